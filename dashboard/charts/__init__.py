"""The numbers the dashboard shows and the plotly figures it draws: pure functions of what the API
returned (no Streamlit, no HTTP), so each is unit-tested on its own. One module per page concern:
``formats`` (times and texts), ``style`` (colours, the small-figure layout), ``sla`` (SLA tiles and the
saga rates of the rollups), ``service_calls`` (per-service call history from the rollups),
``service_state`` (services right now: availability, breakers, utilization), ``samples`` (values a page
samples while open), ``workflows`` (lists and one workflow's detail), ``release`` (the waveless controller).

Definitions (what a tile's number means):

- **completion rate**: sagas that ended COMPLETED, per minute;
- **saga success rate**: COMPLETED / (COMPLETED + COMPENSATED) among the sagas that ended;
- **compensation rate**: sagas that began compensating (failure, timeout or cancel), per minute;
- **retry rate**: step attempts that failed and will be retried / all step attempts;
- **breaker trips**: times a circuit breaker opened;
- **service availability** (history, from the engine's rollups): service calls answered OK / all calls
  (ok + failed + refused by an open breaker or for want of a healthy instance), overall and per service;
  right now (live): services with a healthy instance and a breaker that is not open / all services;
- **service error rate** (history, per service): failed calls / calls answered or failed (ok + failed),
  the breaker's own notion of an error rate.

SLA lights: **red** the seed's target is missed (compliance below the objective), **amber** the seed's
target is met but our tighter bar (a p99) is not, **green** both met, **grey** no data in the window.
"""
