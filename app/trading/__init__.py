"""MIA Elite ``trading`` package: confirm-to-trade through one risk gate.

``ticket -> RiskGate -> journal -> Broker`` (design card section 2):

* :mod:`.orders`: tickets, order requests, brackets, roles, intents (ticks, contracts, USD); the
  vocabulary (side, order type, status, order event, fill, position) is :mod:`app.core.orders`.
* :mod:`.risk`: the rules and :class:`~app.trading.risk.RiskGate`.
* :mod:`.journal`: SQLite WAL journal, written before every action; schema migrations.
* :mod:`.broker`: the broker contract; :mod:`.paper` (local fills on :mod:`app.sim.matching`) and
  :mod:`.dtc_broker` (a Sierra Chart account over DTC).
* :mod:`.killswitch`: lock, cancel all, flatten all, verify with the venue's reports.
* :mod:`.session`: :class:`~app.trading.session.TradingSession`, the object the UI drives.
* :mod:`.config`: :class:`~app.config.trading.TradingSettings` (``trading.toml``).
* ``journal_cmd`` / ``report_cmd``: ``mia-elite export`` / ``mia-elite report``; ``bench``: figures.

No module here imports Qt.
"""
