"""Foreground commands (`wes up`, `wes worker`, `wes exporter`, `wes sim`): start components in order,
watch them until SIGINT/SIGTERM, stop them in reverse order."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import click

from wes_cli.app import App, emit_json, error_message

SUPERVISE_POLL_S = 0.2


class Component:
    """Something `wes up` starts, watches and stops: Redis, workers, the exporter, the API..."""

    name = "component"

    def start(self) -> dict[str, Any]:
        raise NotImplementedError

    def check(self) -> None:
        """Called about every SUPERVISE_POLL_S while running (restart what died)."""

    def stop(self) -> None:
        raise NotImplementedError

    def kill(self) -> None:
        """Second Ctrl-C: stop now, without grace."""


class Supervisor:
    """Starts components in order, supervises them until SIGINT/SIGTERM, stops them in reverse order.

    The first signal asks for a clean stop; a second one kills what is still stopping."""

    def __init__(self) -> None:
        self.running: list[Component] = []
        self.signals = 0
        self._previous: dict[int, Any] = {}

    @property
    def stop_requested(self) -> bool:
        return self.signals > 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals > 1:
            os.write(2, b"\nkilling workers now\n")
            for component in reversed(self.running):
                component.kill()

    def install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._on_signal)

    def restore_signals(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def start(self, component: Component) -> dict[str, Any]:
        info = component.start()
        self.running.append(component)
        return info

    def supervise(self) -> None:
        while not self.stop_requested:
            for component in self.running:
                component.check()
            time.sleep(SUPERVISE_POLL_S)

    def stop_all(self) -> None:
        for component in reversed(list(self.running)):
            try:
                component.stop()
            except Exception as exc:
                click.echo(f"warning: stopping {component.name} failed: {error_message(exc)}", err=True)
            finally:
                self.running.remove(component)


def run_until_signalled(app: App, sup: Supervisor, boot: Callable[[], dict[str, Any]]) -> None:
    """Install the signal handlers, boot, supervise until a signal, then stop everything."""
    sup.install_signals()
    try:
        info = boot()
        if app.json:
            emit_json(info)
        click.echo("\nrunning; Ctrl-C to stop", err=app.json)
        sys.stdout.flush()
        sup.supervise()
        click.echo("stopping (Ctrl-C again to kill the workers now)", err=True)
    finally:
        sup.stop_all()
        sup.restore_signals()
    click.echo("stopped", err=app.json)
