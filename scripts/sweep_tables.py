"""Merge per-family sweep JSONs (`hedgerd backtest --sweep ... --family F --json OUT`) and print
their tables: the family table, a family table beside another seed's, or one row per variant.

    .venv/bin/python scripts/sweep_tables.py var/seed8/sweep_*.json --out docs/sweep-seed8.json
    .venv/bin/python scripts/sweep_tables.py docs/sweep-seed8.json --beside OTHER.json
    .venv/bin/python scripts/sweep_tables.py docs/sweep-combos.json --variants
    .venv/bin/python scripts/sweep_tables.py --explore h1 var/h1/*.json --out docs/X.json

`--explore CAND` reads `scripts/policy_explore.py --json` records instead and keeps one
candidate's: the same worst ratios a sweep of that candidate as the default would print, without
the bootstrap (SE is blank).

Where the records carry the second reading (the default's worst std excess at matched cost,
sweeps and policy_explore records written since it exists), each table is followed by its
std-excess table (`--variants`: std-excess columns; not `--beside`, which compares ratios);
older files print as before.

Runs split by `--family` use the sweep's seed for every variant, so the merge is the table one
run would give. `--beside`: each cell is this file's worst ratio ± SE and the other's, with the
variants named when they differ. A reporting tool, not part of the product.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from hedgerd.backtest.sweep import (
    FamilyWorst,
    StdExcess,
    Worst,
    excess_from_json,
    excess_json,
    family_json,
    render_excess_table,
    render_table,
    worst_by_family,
    worst_json,
)


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One sweep JSON from several runs of the same sweep, paths and seed (families in order;
    a family run in parts, by `--variant`, becomes one row per baseline)."""
    first = docs[0]
    for d in docs[1:]:
        for k in ("sweep", "paths", "seed", "bootstrap", "default_policy", "baselines"):
            if d[k] != first[k]:
                raise SystemExit(f"cannot merge: {k} differs ({first[k]!r} vs {d[k]!r})")
    seen = [(v["family"], v["variant"]) for d in docs for v in d["variants"]]
    twice = sorted({k for k in seen if seen.count(k) > 1})
    if twice:
        # a re-run beside the run it replaces: which one is meant cannot be told
        raise SystemExit(f"cannot merge: a variant appears in more than one file: {twice}")
    out = {k: v for k, v in first.items() if k not in ("families", "variants")}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for f in (f for d in docs for f in d["families"]):
        key = (f["family"], f["baseline"])
        rows[key] = _combined(rows[key], f) if key in rows else f
    out["families"] = list(rows.values())
    out["variants"] = [v for d in docs for v in d["variants"]]
    return out


def _combined(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """One family-and-baseline row from two runs of other variants of that family (a family
    split by `--variant`): the larger worst ratio with its variant, the larger std excess with
    its own, and the counts added."""
    out = dict(a)
    wa, wb = a["worst"], b["worst"]
    if wb is not None and (wa is None or wb["ratio"] > wa["ratio"]):
        out["variant"], out["worst"] = b["variant"], wb
    ea, eb = a.get("std_excess"), b.get("std_excess")
    if eb is not None and (ea is None or eb["std_excess"] > ea["std_excess"]):
        out["excess_variant"], out["std_excess"] = b.get("excess_variant"), eb
    for k in ("variants", "compared", "excess_compared"):
        if k in a or k in b:
            out[k] = a.get(k, 0) + b.get(k, 0)
    return out


def explore_doc(records: list[dict[str, Any]], cand: str) -> dict[str, Any]:
    """A sweep JSON's shape from `policy_explore.py --json` records of candidate `cand`.

    Each variant's worst ratio against a baseline is the largest over the candidate's matched
    stds (report unit), as the sweep's, and its worst std excess the largest over its matched
    costs where the records carry them (`excess`); there is no bootstrap, so `se` is None.
    """
    rows = [r for r in records if r["cand"] == cand]
    if not rows:
        raise SystemExit(f"no records of candidate {cand!r}")
    seen = [r["variant"] for r in rows]
    if len(set(seen)) != len(seen):
        # records carry no seed or paths: two runs of one variant cannot be told apart
        raise SystemExit(f"cannot merge: a variant appears twice for {cand!r}")
    baselines = list(dict.fromkeys(b for r in rows for _, ratios in r["ratios"] for b in ratios))
    worsts = []
    for r in rows:
        family, _, name = r["variant"].partition("/")
        worst: dict[str, Worst | None] = {}
        excess: dict[str, StdExcess | None] = {}
        for b in baselines:
            got = [(x[b], std) for std, x in r["ratios"] if x.get(b) is not None]
            top = max(got, default=None)
            worst[b] = None if top is None else Worst(top[0], top[1], None)
            if "excess" in r:
                more = [(x[b], cost) for cost, x in r["excess"] if x.get(b) is not None]
                e = max(more, default=None)
                excess[b] = None if e is None else StdExcess(e[0], e[1], None)
        worsts.append((family, name, worst, excess))
    families = [family_json(f) for f in worst_by_family(worsts, baselines)]
    variants = [
        {
            "family": f,
            "variant": n,
            "steps": None,
            "worst": {b: worst_json(x) for b, x in w.items()},
            **({"std_excess": {b: excess_json(x) for b, x in e.items()}} if e else {}),
        }
        for f, n, w, e in worsts
    ]
    meta = dict.fromkeys(("sweep", "paths", "seed", "bootstrap"))
    return {
        **meta,
        "default_policy": cand,
        "baselines": baselines,
        "families": families,
        "variants": variants,
    }


def _worst(x: dict[str, Any] | None) -> Worst | None:
    return None if x is None else Worst(x["ratio"], x["std_pnl"], x["se"])


def family_rows(doc: dict[str, Any]) -> list[FamilyWorst]:
    """The family rows of a sweep JSON (without the std excess in files older than it)."""
    return [
        FamilyWorst(
            f["family"],
            f["baseline"],
            f["variant"],
            _worst(f["worst"]),
            f["variants"],
            f["compared"],
            f.get("excess_variant"),
            excess_from_json(f.get("std_excess")),
            f.get("excess_compared", 0),
        )
        for f in doc["families"]
    ]


def has_excess(doc: dict[str, Any]) -> bool:
    """Whether the records carry the std excess at matched cost (a file newer than it)."""
    return any("std_excess" in f for f in doc["families"])


def _short_excess(e: dict[str, Any] | None) -> str:
    if e is None:
        return "—"
    se = f" ± {100 * e['se']:.2f}" if e["se"] is not None else ""
    return f"{100 * e['std_excess']:+.2f} %{se}"


def _short(w: dict[str, Any] | None) -> str:
    if w is None:
        return "—"
    se = f" ± {w['se']:.3f}" if w["se"] is not None else ""
    flag = "**" if w["ratio"] > 1.02 else ""
    return f"{flag}{w['ratio']:.3f}{flag}{se}"


def beside(doc: dict[str, Any], other: dict[str, Any]) -> str:
    """Per family and baseline: `this / other` worst ratios (± SE), variants when they differ."""
    base = doc["baselines"]
    mine = {(f["family"], f["baseline"]): f for f in doc["families"]}
    theirs = {(f["family"], f["baseline"]): f for f in other["families"]}
    lines = [
        f"| family | {' | '.join(base)} |",
        "|---" * (len(base) + 1) + "|",
    ]
    for fam in dict.fromkeys(f["family"] for f in doc["families"]):
        cells = []
        for b in base:
            a, o = mine[fam, b], theirs.get((fam, b))
            cell = f"{_short(a['worst'])} `{a['variant']}`"
            if o is not None:
                where = "" if o["variant"] == a["variant"] else f" `{o['variant']}`"
                cell += f" ({_short(o['worst'])}{where})"
            cells.append(cell)
        lines.append(f"| {fam} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def variant_rows(doc: dict[str, Any]) -> str:
    """One row per variant: steps and the worst ratio ± SE against each baseline, then (where
    the records carry it) the worst std excess at matched cost against each."""
    base = doc["baselines"]
    more = any("std_excess" in v for v in doc["variants"])
    extra = "".join(f" std+ {b} |" for b in base) if more else ""
    lines = [
        f"| family | variant | steps | {' | '.join(base)} |{extra}",
        "|---" * (len(base) * (2 if more else 1) + 3) + "|",
    ]
    for v in doc["variants"]:
        cells = " | ".join(_short(v["worst"].get(b)) for b in base)
        if more:
            exc = v.get("std_excess", {})
            cells += " | " + " | ".join(_short_excess(exc.get(b)) for b in base)
        steps = "—" if v["steps"] is None else f"{v['steps']:,}"
        lines.append(f"| {v['family']} | {v['variant']} | {steps} | {cells} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", type=Path, nargs="+", help="sweep JSON files (merged in order)")
    ap.add_argument("--out", type=Path, default=None, help="write the merged JSON here")
    ap.add_argument("--note", action="append", default=[], help="KEY=VALUE kept in the JSON")
    ap.add_argument("--beside", type=Path, default=None, help="another sweep JSON to compare")
    ap.add_argument("--variants", action="store_true", help="one row per variant")
    ap.add_argument(
        "--explore", metavar="CAND", default=None, help="read policy_explore.py records of CAND"
    )
    args = ap.parse_args(argv)
    raw = [json.loads(p.read_text()) for p in args.json]
    if args.explore is not None:
        raw = [explore_doc([r for recs in raw for r in recs], args.explore)]
    doc = merge(raw)
    for n in args.note:
        key, _, value = n.partition("=")
        doc[key] = json.loads(value) if value[:1] in "{[" else value
    if args.out is not None:
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
    if args.beside is not None:
        print(beside(doc, json.loads(args.beside.read_text())))
    elif args.variants:
        print(variant_rows(doc))
    else:
        rows = family_rows(doc)
        print(render_table(rows, doc["baselines"]))
        if has_excess(doc):
            print()
            print(render_excess_table(rows, doc["baselines"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
