"""``mia-elite evaluate PATH...``: are the signals worth anything, over every session there is.

PATH is ``default`` (the shipped real ES hour), a file or a folder (walked): MIA recordings
(``.mrec``), Databento DBN MBO, Binance captures (``.gz``), Sierra Chart ``.scid`` (with the
symbol's ``.depth`` files). The data is cut into trading sessions by the instrument's calendar,
the analysis engine runs headless over each session and profile (a process pool, ``--jobs``),
and each profile is measured (:mod:`app.research.evaluate`): target-first rate with a Wilson
interval, expectancy in ticks and USD after costs with a session-block bootstrap interval, the
breakeven rate, Sharpe and drawdown over session P&L (from 20 sessions), a random-entry baseline
matched on side, bracket and time of day, per-pattern rows (signals citing the pattern, and
ablation: the profile with that pattern removed), Benjamini-Hochberg over every p-value, and one
verdict line per profile. How to read it: ``docs/evaluation.md``.

Output: tables on the terminal (pandas), ``--json`` (one document; wall-clock figures only under
``"timing"``), ``--html FILE`` (tables and plots as embedded PNG, matplotlib). pandas and
matplotlib are not in the Windows bundle: without them the command says so in one line.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import sys
from pathlib import Path

from app.research.evaluate import DEFAULT_PROFILES

_MISSING = ("{what} is not installed: `mia-elite evaluate` needs it for {why} "
            "(pip install 'mia-elite[research]'; it is not in the Windows bundle)")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the command's options."""
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="'default', recordings (.mrec, .dbn[.zst], Binance .gz, .scid) or folders")
    p.add_argument("--profile", action="append", default=None, metavar="P",
                   help=f"profile to evaluate (repeatable; default all: {', '.join(DEFAULT_PROFILES)})")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument("--html", metavar="FILE", default=None, help="write an HTML report with plots")
    p.add_argument("--jobs", type=int, default=None, metavar="N", help="worker processes (default: the cores)")
    p.add_argument("--draws", type=int, default=1000, metavar="N", help="random-baseline draws per signal")
    p.add_argument("--seed", type=int, default=0, help="seed of every random figure (default 0)")
    p.add_argument("--no-ablation", action="store_true", help="skip the runs with one pattern removed")
    p.add_argument("--commission", type=float, default=None, metavar="USD",
                   help="commission per contract per side (default: trading.toml's for each symbol, else 2.25)")
    p.add_argument("--stop-slippage", type=float, default=None, metavar="TICKS",
                   help="adverse ticks on a stop exit (default: trading.toml's slippage_ticks, else 0)")
    p.add_argument("--snapshots", metavar="DIR", default=None,
                   help="write every candidate step's features and outcome to Parquet under DIR")
    p.add_argument("--tick-size", type=float, default=0.25, help=".scid only: price increment (default 0.25)")
    p.add_argument("--tick-value", type=float, default=12.5, help=".scid only: USD per tick (default 12.5)")
    p.add_argument("--exchange", default="CME", help=".scid only: exchange for the session calendar (default CME)")


def _fmt_ci(lo, hi, nd=2):
    return "-" if lo is None or hi is None else f"[{lo:.{nd}f}, {hi:.{nd}f}]"


def _f(x, nd=3):
    return "-" if x is None else f"{x:.{nd}f}"


def _breakeven(x) -> str:
    """The breakeven rate, or why there is none: above 1 the costs eat the whole target."""
    if x is None:
        return "-"
    return f"{x:.2f}" if x <= 1.0 else f"none ({x:.2f} > 1: costs exceed the target)"


def tables(rep: dict):
    """``(profiles, patterns)`` pandas DataFrames of a report (raises ImportError without pandas)."""
    import pandas as pd

    rows, prow = [], []
    for name, b in rep["profiles"].items():
        eu, et = b["expectancy_usd"], b["expectancy_ticks"]
        rows.append({
            "profile": name, "n": b["n"], "sessions": b["sessions"], "decided": b["decided"],
            "target_first": _f(b["rate"], 2), "95% CI": _fmt_ci(*b["rate_ci"]),
            "breakeven": _breakeven(b["breakeven_rate"]),
            "exp_ticks": _f(et["mean"], 2), "ticks CI": _fmt_ci(et["low"], et["high"]),
            "exp_usd": _f(eu["mean"], 2), "usd CI": _fmt_ci(eu["low"], eu["high"]),
            "random_usd": _f(b["baseline"]["mean_usd"], 2), "random_rate": _f(b["baseline"]["rate"], 2),
            "p": _f(b["p_value"]), "p_BH": _f(b["p_adjusted"]),
            "sharpe": _f(b["risk"]["sharpe"], 2) if b["risk"]["sharpe"] is not None else b["risk"]["note"] or "-",
        })
        for pat, r in b["patterns"].items():
            c = r["citing"]
            a = r.get("ablation")
            prow.append({
                "profile": name, "pattern": pat, "citing n": c["n"], "target_first": _f(c["rate"], 2),
                "95% CI": _fmt_ci(*c["rate_ci"]), "exp_usd": _f(c["expectancy_usd"]["mean"], 2),
                "p": _f(c["p_value"]), "p_BH": _f(c["p_adjusted"]),
                "without: n": a["n"] if a else "-", "without: usd": _f(a["total_usd"], 2) if a else "-",
                "contribution_usd": _f(a["contribution_usd"], 2) if a else "-",
            })
    return pd.DataFrame(rows), pd.DataFrame(prow)


def print_text(rep: dict, out) -> None:
    """The terminal report: sessions, the tables, the verdict lines."""
    ss = rep["sessions"]
    print(f"{len(ss)} session(s): " + ", ".join(s["id"] for s in ss[:8]) + (" ..." if len(ss) > 8 else ""), file=out)
    for s in rep.get("skipped", []):
        print(f"  skipped {s['path']}: {s['reason']}", file=out)
    st = rep["settings"]
    cm = st["commission_usd"]
    cms = ", ".join(f"{k} {v:.2f}" for k, v in cm.items()) if isinstance(cm, dict) else f"{cm:.2f}"
    print(f"costs: commission {cms} USD per contract per side, stop slippage {st['stop_slippage_ticks']:g} "
          f"ticks; baseline {st['draws']} draws per signal, +-{st['window_s'] / 60:g} min of the signal's time "
          f"of day; seed {st['seed']}", file=out)
    try:
        prof, pats = tables(rep)
    except ImportError:
        print(_MISSING.format(what="pandas", why="the tables"), file=out)
    else:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_columns", 40, "display.max_rows", 500):
            print("\nper profile (one contract per signal; intervals 95 %)", file=out)
            print(prof.to_string(index=False), file=out)
            if len(pats):
                print("\nper pattern: signals citing it, and the profile without it (ablation)", file=out)
                print(pats.to_string(index=False), file=out)
    print("", file=out)
    for v in rep["verdicts"]:
        print(v, file=out)
    e = rep.get("engine", {})
    if e.get("errors"):
        print(f"analyzer errors: {e['errors']} (last below)\n{e['last_error']}", file=out)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_html(rep: dict, path: str | Path) -> Path:
    """Write the HTML report (tables + two plots embedded as base64 PNG) to ``path``.

    Raises
    ------
    ImportError
        pandas or matplotlib is missing.
    OSError
        The file cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from app.config.files import atomic_write

    prof, pats = tables(rep)
    fig, ax = plt.subplots(figsize=(12, 4.5))
    for name, b in rep["profiles"].items():
        if not b["equity"]:
            continue
        x = list(range(1, len(b["equity"]) + 1))
        line, = ax.plot(x, b["equity"], marker="o", ms=3, label=f"{name} (n = {b['n']})")
        lo, hi = b["baseline_band"]
        ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15, label=f"{name}: random 5-95 %")
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xlabel("signal number (time order)")
    ax.set_ylabel("cumulative net USD, 1 contract")
    ax.set_title("equity per profile against random entries (same side, bracket, time of day)")
    # beside the plot, not over the curves
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    eq_png = _png(fig)
    plt.close(fig)
    labels, rates, los, his, bes = [], [], [], [], []
    for name, b in rep["profiles"].items():
        for pat, r in b["patterns"].items():
            c = r["citing"]
            if c["rate"] is None:
                continue
            labels.append(f"{name}/{pat} (n={c['decided']})")
            rates.append(c["rate"])
            los.append(c["rate"] - c["rate_ci"][0])
            his.append(c["rate_ci"][1] - c["rate"])
            bes.append(c["breakeven_rate"])
    fig, ax = plt.subplots(figsize=(9, max(2.5, 0.3 * len(labels) + 1)))
    if labels:
        y = list(range(len(labels)))
        ax.errorbar(rates, y, xerr=[los, his], fmt="o", capsize=3, label="target first, 95 % Wilson")
        ax.scatter([b if b is not None and b <= 1.0 else float("nan") for b in bes], y, marker="|", s=200, color="red",
                   label="breakeven after costs")
        ax.set_yticks(y, labels, fontsize=8)
        ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False)
    ax.set_xlim(0, 1)
    ax.set_xlabel("target-first rate (signals citing the pattern)")
    rate_png = _png(fig)
    plt.close(fig)
    esc = html.escape
    st = rep["settings"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>MIA Elite evaluation</title>",
        "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}.v{font-weight:bold}</style></head><body>",
        "<h1>MIA Elite evaluation</h1>",
        "<h2>Verdicts</h2><ul>" + "".join(f"<li class='v'>{esc(v)}</li>" for v in rep["verdicts"]) + "</ul>",
        f"<p>{len(rep['sessions'])} session(s); commission {esc(str(st['commission_usd']))} USD per contract per side, stop "
        f"slippage {st['stop_slippage_ticks']:g} ticks; {st['draws']} random draws per signal; Sharpe and drawdown "
        f"need at least {st['min_sessions_risk']} sessions. How to read this: docs/evaluation.md.</p>",
        "<h2>Per profile</h2>", prof.to_html(index=False, escape=True),
        f"<img alt='equity curves' src='data:image/png;base64,{eq_png}'>",
        "<h2>Per pattern</h2><p>Rows are signals <em>citing</em> the pattern; the <em>without</em> columns are the "
        "profile rerun with the pattern removed (ablation).</p>",
        pats.to_html(index=False, escape=True) if len(pats) else "<p>no signals</p>",
        f"<img alt='target-first rate per pattern' src='data:image/png;base64,{rate_png}'>",
        "<h2>Sessions</h2><ul>" + "".join(
            f"<li>{esc(s['id'])}: {s['start']} .. {s['end']}, {s['trades']} trades, drift {s['drift_ticks']} ticks "
            f"({esc(s['source'])})</li>" for s in rep["sessions"]) + "</ul>",
        "</body></html>",
    ]
    return atomic_write(path, "\n".join(parts))


def run(args: argparse.Namespace) -> int:
    """Run the command; 0 on success, 2 on a bad argument, unreadable input or a missing library."""
    from app.research.evaluate import evaluate

    if args.draws < 1:
        print(f"evaluate: --draws must be >= 1, got {args.draws}", file=sys.stderr)
        return 2
    if args.jobs is not None and args.jobs < 1:
        print(f"evaluate: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    profiles = args.profile or list(DEFAULT_PROFILES)
    try:
        from app.live.engine import resolve_profile

        for p in profiles:
            resolve_profile(p)
    except (OSError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    if args.html:
        try:
            import matplotlib  # noqa: F401
            import pandas  # noqa: F401
        except ImportError as exc:
            print("evaluate: " + _MISSING.format(what=exc.name or "matplotlib", why="--html"), file=sys.stderr)
            return 2
    try:
        from app.config.trading import load_trading_settings

        ts = load_trading_settings()
        commission = ts.commission_for if args.commission is None else args.commission
        slip = float(ts.slippage_ticks) if args.stop_slippage is None else args.stop_slippage
        rep = evaluate(args.paths, profiles, draws=args.draws, workers=args.jobs, ablation=not args.no_ablation,
                       seed=args.seed, commission_usd=commission, stop_slippage_ticks=slip,
                       snapshots=args.snapshots, tick_size=args.tick_size, tick_value=args.tick_value,
                       exchange=args.exchange)
    except (OSError, ValueError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    if not rep["sessions"]:
        print("evaluate: no session with enough trades in " + " ".join(args.paths), file=sys.stderr)
        for s in rep.get("skipped", []):
            print(f"  skipped {s['path']}: {s['reason']}", file=sys.stderr)
        return 2
    if args.html:
        try:
            p = write_html(rep, args.html)
        except OSError as exc:
            print(f"evaluate: cannot write {args.html}: {exc}", file=sys.stderr)
            return 2
        print(f"HTML report: {p}", file=sys.stderr)
    if args.json:
        json.dump(rep, sys.stdout, indent=1, sort_keys=True)
        sys.stdout.write("\n")
        for v in rep["verdicts"]:
            print(v, file=sys.stderr)
    else:
        print_text(rep, sys.stdout)
    return 0
