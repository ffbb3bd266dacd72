"""Simulators of the three backends, for the demo (scripts/develop) and the tests.

Not shipped with the integration. Each backend module exposes ``create_app(...) -> web.Application``
and ``add_arguments(parser)`` / ``app_from_args(args)`` for ``python -m simulator <backend>``.
Every app carries a :class:`simulator.faults.FaultInjector` under ``FAULTS`` for tests.
"""
