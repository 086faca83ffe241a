"""Pure domain model: no Redis, RQ, HTTP or UI imports; time comes in as a parameter."""
