"""Write the generated tables of README.md, docs/*.md and deploy/README.md from their data.

    python docs/generate.py                  # rewrite every generated block
    python docs/generate.py --check          # exit 1, with a diff, when a block differs from its data
    .venv/bin/python docs/generate.py --refresh-eval [--model NAME]
                                             # run `qa eval` on both halves (minutes), save docs/data, rewrite

A generated block is the text between `<!-- generated:NAME -->` and `<!-- /generated -->`; NAME says
which function of BLOCKS writes it. Figures are never typed into docs/ by hand: they come from

- docs/data/eval-test.json, docs/data/eval-tune.json: `python -m qa eval tests/data/sets --split
  test|tune --json`, i.e. {set: {"overall": metrics, "by_kind": {kind: metrics}, "misses": [...]}},
  plus an optional "_meta" (model, commit, date, source) that --refresh-eval adds;
- qa/decision.json: the fitted decision and the figures it was fitted on (qa/fit_decision.py);
- qa/ranker.json: the fitted sentence ranker and its leave-one-set-out figures (qa/fit_ranker.py);
- docs/data/rules.json: what each hand rule of quoting gains on tune (bench/ablate_rules.py);
- bench/results.json: every benchmark's figures, one part each: `make bench` (bench/run.py; its parts
  rendered with bench/report.py's own functions), bench/models.py ("models"), bench/api_load.py
  ("api_load") and bench/load.py (`make load`, "load").

Metrics are rendered whatever their keys: the known ones in PREFERRED order, then any others as they
come. Only the standard library is used, so the check runs in the tests without a model.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "docs" / "data"
BLOCK = re.compile(r"(<!-- generated:([\w-]+) -->\n)(.*?)(<!-- /generated -->)", re.S)
ROUTES = re.compile(r"<!-- routes -->\n(.*?)<!-- /routes -->", re.S)

# Known metrics, in the order a reader wants them; keys not listed here follow, as they come.
PREFERRED = (
    "items", "hit@1", "median_first_quote_chars", "hit@3", "doc@1", "answered", "uncertain", "declined",
    "answered_right", "uncertain_right", "offtopic_declined", "unanswerable_declined", "unanswerable_caught",
    "verbatim", "median_fact_quote_chars", "median_latency_ms",
)
LABELS = {
    "offtopic_declined": "off-topic declined", "unanswerable_caught": "unanswerable caught",
    "unanswerable_declined": "unanswerable declined", "answered_right": "answered, right",
    "uncertain_right": "uncertain, right",
    "median_fact_quote_chars": "median fact quote (chars)", "median_first_quote_chars": "median first quote (chars)",
    "median_latency_ms": "median latency (ms)", "span_hit": "span hit",
}
# Shares whose denominator is the items of one kind, so that kinds can be pooled across sets by item count.
POOLABLE = ("hit@1", "hit@3", "answered", "declined", "uncertain", "offtopic_declined", "unanswerable_declined",
            "unanswerable_caught")
README_EVAL = ("items", "hit@1", "median_first_quote_chars", "doc@1", "answered", "answered_right",
               "unanswerable_declined", "unanswerable_caught")
KIND_ORDER = ("fact", "paraphrase", "noisy", "broad", "followup", "offtopic", "unanswerable")


# ---- data ---------------------------------------------------------------------------------------------


def read_json(path: Path) -> dict:
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def eval_data(split: str) -> dict:
    return read_json(DATA / f"eval-{split}.json")


def sets(data: dict) -> dict[str, dict]:
    return {name: value for name, value in data.items() if not name.startswith("_")}


def bench_results() -> dict:
    """bench/results.json: every benchmark's figures, by part ({} when it is missing)."""
    return read_json(ROOT / "bench" / "results.json")


def bench_report():
    """bench/report.py, the renderer bench/run.py uses for bench/results.md (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- cells and tables ---------------------------------------------------------------------------------


def label(key: str) -> str:
    return LABELS.get(key, key.replace("_", " "))


def is_share(key: str, value) -> bool:
    numeric = key == "items" or key.startswith("median") or key.endswith(("_ms", "_chars", "_s", "_count"))
    return isinstance(value, float) and 0 <= value <= 1 and not numeric


def cell(key: str, value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if is_share(key, value):
        return f"{value:.0%}"
    if isinstance(value, float):
        return f"{value:,.1f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def columns(metrics: list[dict]) -> list[str]:
    """Every key some metrics dict holds with a value, PREFERRED ones first."""
    seen = list(dict.fromkeys(k for m in metrics for k, v in m.items() if v is not None))
    return [k for k in PREFERRED if k in seen] + [k for k in seen if k not in PREFERRED]


def table(head: list[str], rows: list[list[str]], numeric_from: int = 1) -> list[str]:
    align = ["---" if i < numeric_from else "---:" for i in range(len(head))]
    return ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def metrics_table(first: str, rows: list[tuple[str, dict]], keys: list[str] | None = None) -> list[str]:
    keys = keys or columns([m for _, m in rows])
    return table([first] + [label(k) for k in keys], [[name] + [cell(k, m.get(k)) for k in keys] for name, m in rows])


def provenance(data: dict, path: str) -> str:
    meta = data.get("_meta", {})
    about = ", ".join(f"{k} {meta[k]}" for k in ("model", "commit", "date") if meta.get(k))
    source = meta.get("source", "").rstrip(".")
    return f"<sub>From `{path}`" + (f" ({about})" if about else "") + (f": {source}" if source else "") + ".</sub>"


def sub(text: str) -> str:
    return f"<sub>{text}</sub>"


def machine_line(m: dict, model: str | None = None) -> str:
    load = m.get("load_avg")
    load = ", ".join(f"{x:g}" for x in load) if isinstance(load, list) else load
    bits = [model, m.get("date"), f"{m['cpu']} ({m.get('cores', '?')} cores, shared)" if m.get("cpu") else None,
            f"commit {m['commit']}" if m.get("commit") else None, f"load average {load}" if load else None]
    return sub(", ".join(b for b in bits if b))


# ---- evaluation ---------------------------------------------------------------------------------------


def eval_half(split: str) -> list[str]:
    data = eval_data(split)
    if not sets(data):
        return [f"No data: docs/data/eval-{split}.json is missing. Run `python docs/generate.py --refresh-eval`."]
    rows = [(name, s["overall"]) for name, s in sets(data).items()]
    return metrics_table("set", rows) + ["", provenance(data, f"docs/data/eval-{split}.json")]


def pooled(data: dict) -> dict[str, dict]:
    """By kind, over every set: item counts summed, POOLABLE shares weighted by items."""
    out: dict[str, dict] = {}
    for s in sets(data).values():
        for kind, m in s.get("by_kind", {}).items():
            acc = out.setdefault(kind, {"items": 0, "_sums": {}, "_counts": {}})
            acc["items"] += m.get("items", 0)
            for key in POOLABLE:
                if m.get(key) is not None:
                    acc["_sums"][key] = acc["_sums"].get(key, 0) + m[key] * m["items"]
                    acc["_counts"][key] = acc["_counts"].get(key, 0) + m["items"]
    return {kind: {"items": a["items"], **{k: round(a["_sums"][k] / a["_counts"][k], 3) for k in a["_sums"]}}
            for kind, a in out.items()}


def kind_sorted(kinds) -> list[str]:
    return sorted(kinds, key=lambda k: (KIND_ORDER.index(k) if k in KIND_ORDER else len(KIND_ORDER), k))


def eval_by_kind() -> list[str]:
    test, tune = pooled(eval_data("test")), pooled(eval_data("tune"))
    if not test:
        return ["The data holds no by-kind figures yet: run `python docs/generate.py --refresh-eval`."]
    keys = columns(list(test.values()))
    rows = [[kind] + [cell(k, test[kind].get(k)) + (f" ({cell(k, tune[kind].get(k))})" if kind in tune else "")
                      for k in keys] for kind in kind_sorted(test)]
    out = table(["kind"] + [label(k) for k in keys], rows)
    out += ["", sub("Pooled over every set: items summed, shares weighted by each set's items of that kind.")]
    details = []
    for name, s in sets(eval_data("test")).items():
        if s.get("by_kind"):
            details += ["", f"**{name}**", ""] + metrics_table(
                "kind", [(k, s["by_kind"][k]) for k in kind_sorted(s["by_kind"])])
    if details:
        out += ["", "<details><summary>Each set by kind (test half)</summary>"] + details + ["", "</details>"]
    return out


def decision() -> list[str]:
    models = read_json(ROOT / "qa" / "decision.json").get("models", {})
    if not models:
        return ["No data: qa/decision.json holds no fitted model."]
    names = list(models)
    fit = [[name, f"{m['fitted_on']['items']:,}", str(len(m["fitted_on"]["sets"])), f"{m['tune']['auc']:.3f}",
            f"{m['held_out']['auc']:.3f}" if m.get("held_out") else "–", f"{m['decision']['near']:.3g}",
            f"{m['decision']['uncertain']:.3g}", f"{m['decision']['answer']:.3g}"] for name, m in models.items()]
    out = table(["model", "tune items", "sets", "AUC, tune", "AUC, each set held out", "near", "uncertain",
                 "answer"], fit)
    signals = models[names[0]]["decision"]["signals"]
    weights = [[f"`{s}`"] + [f"{models[n]['decision']['weights'][i]:+.2f}" for n in names]
               for i, s in enumerate(signals)]
    weights.append(["bias"] + [f"{models[n]['decision']['bias']:+.2f}" for n in names])
    out += ["", "Weights (log-odds per standard deviation; per unit for yes/no signals):", ""]
    out += table(["signal"] + names, weights)
    groups = list(dict.fromkeys(g for n in names for g in models[n]["tune"]["outcomes"]))
    outcomes = [[g] + [" / ".join(str(models[n]["tune"]["outcomes"].get(g, {}).get(o, 0))
                                  for o in ("answered", "uncertain", "declined")) for n in names] for g in groups]
    out += ["", "Outcomes on the tune items it was fitted on (answered / uncertain / declined):", ""]
    out += table(["items"] + names, outcomes)
    return out + ["", sub("From `qa/decision.json` (`qa/fit_decision.py`).")]


def ranker() -> list[str]:
    models = read_json(ROOT / "qa" / "ranker.json").get("models", {})
    if not models:
        return ["No data: qa/ranker.json holds no fitted model (`python -m qa.fit_ranker`)."]
    out = []
    for name, m in models.items():
        held, hand = m["leave_one_set_out"]["first_candidate_right"], m["leave_one_set_out"]["hand_set_score"]
        rows = [[s, f"{hand[s]:.0%}", f"{held[s]:.0%}"] for s in held]
        mean = lambda d: sum(d.values()) / len(d)
        rows.append(["mean", f"{mean(hand):.1%}", f"{mean(held):.1%}"])
        out += [f"**{name}**: fitted on {m['fitted_on']['questions']:,} answerable tune questions of "
                f"{len(m['fitted_on']['sets'])} sets ({m['fitted_on']['with_answer_in_candidates']:,} with the answer "
                f"among the candidates), penalty {m['fitted_on']['penalty']:g}. First candidate right, each set "
                "ranked by the ranker fitted on the other sets:", ""]
        out += table(["set (held out)", "hand-set score", "fitted ranker"], rows) + [""]
        weights = m["ranker"]["weights"]
        out += ["<details><summary>Its weights (per standard deviation; per unit for yes/no features)</summary>", ""]
        out += table(["feature", "weight"], [[f"`{f}`", f"{w:+.2f}"] for f, w in zip(m["ranker"]["features"], weights)])
        out += ["", "</details>", ""]
    return out + [sub("From `qa/ranker.json` (`qa/fit_ranker.py`).")]


def rules() -> list[str]:
    data = read_json(DATA / "rules.json")
    if not data:
        return ["No data: run `python bench/ablate_rules.py --json docs/data/rules.json`."]
    row = lambda name, r, verdict: [f"`{name}`", str(sum(r["gained"].values())), str(sum(r["lost"].values())),
                                    f"{r['net']:+d}", ", ".join(r["sets"]) or "–",
                                    f"{r['median_first_quote_chars']:g}", verdict]
    rows = [row(name, r, "yes" if r["keep"] else "no") for name, r in data["rules"].items()]
    rows += [row(name, r, "no: removed") for name, r in data.get("removed", {}).items()]
    out = table(["rule (off)", "items it gains", "items it loses", "net", "sets it gains on",
                 "median first quote without it", "meets the bar"], rows)
    return out + ["", sub(f"From `docs/data/rules.json` (`bench/ablate_rules.py`, {Path(data['model']).name}, "
                          f"{data['split']} halves, decision off).")]


def readme_eval() -> list[str]:
    data = eval_data("test")
    if not sets(data):
        return ["No data yet: see docs/EVALUATION.md."]
    rows = [(name, s["overall"]) for name, s in sets(data).items()]
    keys = [k for k in columns([m for _, m in rows]) if k in README_EVAL]
    return metrics_table("set", rows, keys)


# ---- performance --------------------------------------------------------------------------------------


def perf_models() -> list[str]:
    part = bench_results().get("models")
    if not part:
        return ["No data: run `python bench/models.py`."]
    rows = [[r["model"], f"{r['build_s']:.1f} s", f"{r['ask_ms']:.1f} ms", f"{r['encode_ms']:.1f} ms",
             f"{r['ask_per_encode']:.2f}", f"{r['peak_rss_mb'] / 1000:.1f} GB", f"{r['load_average']:g}"]
            for r in part["runs"]]
    out = table(["model", "build the IPU profile", "warm `ask` (median)", "one ONNX query encode", "ask ÷ encode",
                 "peak RSS (build + asks)", "load average"], rows)
    return out + ["", machine_line(part.get("machine", {}))]


def readme_speed() -> list[str]:
    part = bench_results().get("models")
    if not part:
        return ["No data yet: see docs/PERFORMANCE.md."]
    rows = [[r["model"], f"{r['build_s']:.0f} s", f"{r['ask_ms']:.0f} ms"] for r in part["runs"]]
    return table(["model", "build the IPU profile", "a warm answer (median)"], rows)


def over_floor(p95_ms: float, run: dict) -> str:
    """A load run's p95 against its queueing floor, as the tables show it ("–" for runs saved without one)."""
    return f"{p95_ms / run['floor_ms']:.2f}" if "floor_ms" in run else "–"


# Issue 20's figures when it was filed (commit 69aa41f, an idle 2-core machine, all-mpnet-base-v2): the
# README gives today's beside them. History, so typed here once; today's come from bench/results.json.
FILED = {"build": "3.2× (291 s against 91 s)", "build_rss": "4.1 GB", "seed": "~40 s a build",
         "app_rss": "870 MB", "api": "1.03", "api_p95": "2.4×", "chat_p95": "4.9×"}


def readme_serving() -> list[str]:
    """Issue 20's targets for building and serving, when it was filed and in the last bench runs (default model)."""
    results = bench_results()
    b = results.get("build")
    api = next((r for r in results.get("api_load", {}).get("runs", []) if r["model"] == "all-mpnet-base-v2"), None)
    chat = next((r for r in results.get("load", {}).get("runs", []) if r["model"] == "all-mpnet-base-v2"), None)
    if not (b and api and chat):
        return ["No data yet: see docs/PERFORMANCE.md and docs/SERVING.md."]
    met = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    by_workers = {r["workers"]: r for r in api["rows"]}
    rows = []
    if st := b.get("sentence_transformers"):
        rows.append(["a build of the SQuAD articles ÷ one sentence-transformers pass", "≤ 1.2×", FILED["build"],
                     f"{b['ratio_wall']:.2f}× ({b['small']['wall_s']:.0f} s against {st['wall_s']:.0f} s)",
                     met(b["ratio_wall"] <= 1.2)])
    peak = f"{b['small']['peak_rss_mb']:,.0f} MB"
    if large := b.get("large"):
        peak += f"; {large['peak_rss_mb']:,.0f} MB at {large['kb'] / 1000:.1f} MB of text"
    rows.append(["peak RSS of a build, flat as the corpus grows", "≤ 2 GB", FILED["build_rss"], peak,
                 met(b["small"]["peak_rss_mb"] <= 2048 and (not large or large["peak_rss_mb"] <= 2048))])
    if seed := b.get("seed"):
        rows.append(["the seed rebuilt ÷ importing sentence-transformers and loading the model", "≤ 0.5×",
                     FILED["seed"], f"{seed['ratio']:.2f}×", met(seed["ratio"] <= 0.5)])
    totals = {n: r["app"]["Rss"] + sum(w["Rss"] for w in r["workers_mem"]) for n, r in by_workers.items()}
    rows.append(["app RSS serving the seed", "≤ 600 MB", FILED["app_rss"],
                 "; ".join(f"{totals[n]:,} MB with `--workers {n}`" for n in sorted(totals)),
                 ", ".join(f"{met(totals[n] <= 600)} with {n}" for n in sorted(totals))])
    api_met = {n: r["rps_x_ask"] >= 1.6 and "floor_ms" in r and r["p95"] <= 1.5 * r["floor_ms"] for n, r in by_workers.items()}
    rows.append([f"JSON API, {api['clients']} clients: req/s × ask; p95 ÷ floor", "≥ 1.6; ≤ 1.5×",
                 f"{FILED['api']}; {FILED['api_p95']}",
                 "; ".join(f"`--workers {n}`: {r['rps_x_ask']:.2f}, {over_floor(r['p95'], r)}×"
                           for n, r in sorted(by_workers.items())),
                 ", ".join(f"{met(ok)} with {n}" for n, ok in sorted(api_met.items()))])
    if "floor_ms" in chat:
        rows.append([f"chat, {chat['sessions']} sessions, p95 ÷ floor", "≤ 3×", FILED["chat_p95"],
                     f"{over_floor(chat['p95_ms'], chat)}× ({chat['rps']:g} req/s, {chat['errors']} errors, "
                     f"{chat['differ_from_ask']} replies ≠ `bot.ask`)", met(chat["p95_ms"] <= 3 * chat["floor_ms"])])
    return table(["all-mpnet-base-v2, 2 cores", "target", "when issue 20 was filed", "last bench run", "met"], rows,
                 numeric_from=9)


def perf_quick() -> list[str]:
    results, report = bench_results(), bench_report()
    out: list[str] = []
    for part in ("warm", "cold", "memory"):
        if part in results:
            out += getattr(report, part)(results[part]) + ["", sub(report._machine(results[part])), ""]
    return out[:-1] or ["No data: run `make bench`."]


def perf_scale() -> list[str]:
    results, report = bench_results(), bench_report()
    if "scale" not in results:
        return ["No data: run `make bench BENCH=--scale`."]
    return report.scale(results["scale"]) + ["", sub(report._machine(results["scale"]))]


def perf_build() -> list[str]:
    """The last `python bench/build.py` of the default model: the build against one sentence-transformers
    pass over the same text, and the seed rebuild against sentence-transformers' start."""
    results, report = bench_results(), bench_report()
    b = results.get("build")
    if not b:
        return ["No data: run `python bench/build.py`."]
    r, st = b["small"], b.get("sentence_transformers")
    rows = [[f"{Path(b['model']).name}, `{b['design']}`",
             f"{r['wall_s']:.0f} s, {r['embedded']:,} texts, {r['texts_per_s']:.1f} texts/s, {r['kb_per_s']:.2f} KB/s "
             f"(load {r['load_avg']:g})",
             f"{st['wall_s']:.0f} s, {st['texts']} pieces (load {st['load_avg']:g})" if st else "–",
             f"**{b['ratio_wall']:.2f}×** (≤ 1.2×)" if st else "–", f"{r['peak_rss_mb']:,.0f} MB (≤ 2 GB)",
             f"{st['peak_rss_mb']:,.0f} MB" if st else "–"]]
    out = table(["model, design", "build (`qa.build_index`, whole process)", "sentence-transformers pass (whole script)",
                 "ratio", "build peak RSS", "its peak RSS"], rows)
    if large := b.get("large"):
        out += ["", f"The same articles ten times over ({large['kb']:,.0f} KB, {large['chunks']:,} chunks, "
                    f"{large['embedded']:,} texts): {large['wall_s']:.0f} s, {large['texts_per_s']:.1f} texts/s, peak RSS "
                    f"**{large['peak_rss_mb']:,.0f} MB** against {r['peak_rss_mb']:,.0f} MB (load {large['load_avg']:g})."]
    if seed := b.get("seed"):
        out += ["", f"The seed profile built into a new folder once the export exists: median "
                    f"{seed['build_median_s']:.2f} s against {seed['st_median_s']:.2f} s for `import "
                    f"sentence_transformers` plus loading the model: **{seed['ratio']:.2f}×** (≤ 0.5×; load "
                    f"{seed['load_avg']:g})."]
    return out + ["", sub(f"From `bench/results.json` (`python bench/build.py`): {report._machine(b)}.")]


def _mem(m: dict | None) -> str:
    return f"{m['Rss']:.0f} / {m['Pss']:.0f} MB" if m else "–"


def perf_api() -> list[str]:
    part = bench_results().get("api_load")
    if not part:
        return ["No data: run `python bench/api_load.py`."]
    out: list[str] = []
    for run in part["runs"]:
        rows = []
        for r in run["rows"]:
            ratio = r.get("rps_x_ask", r["rps"] * r["ask_ms"] / 1000)
            cpu = " / ".join(f"{r[k]:g}" for k in ("server_cpu_ms", "ask_cpu_ms", "client_cpu_ms") if k in r)
            rows.append([str(r["workers"]), f"{r['rps']:g}", f"{r['p50']:,.0f} ms", f"**{r['p95']:,.0f} ms**",
                         over_floor(r["p95"], r),
                         f"{r['p99']:,.0f} ms", f"{r['max']:,.0f} ms" if "max" in r else "–", str(r["errors"]),
                         f"{r['ask_ms']:.1f} ms", f"{ratio:.2f}", cpu + " ms",
                         ", ".join(f"{x:g}" for x in r["load_avg"]) if r.get("load_avg") else "–", _mem(r["app"]),
                         ", ".join(_mem(w) for w in r["workers_mem"]) or "–"])
        out += [f"**{run['model']}**, {run['clients']} clients × {run['questions']} questions:", ""]
        out += table(["`--workers`", "req/s", "p50", "p95", "p95 ÷ floor", "p99", "max", "errors", "`bot.ask` in process",
                      "req/s × ask", "CPU per request: server / `bot.ask` / client", "load average",
                      "app RSS / PSS", "each worker RSS / PSS"], rows)
        out += ["", machine_line(run.get("machine", {})), ""]
    return out[:-1]


CLIENTS = {"rest": "Gradio's REST API (httpx, asyncio)", "gradio_client": "`gradio_client`"}


def perf_load() -> list[str]:
    part = bench_results().get("load")
    if not part:
        return ["No data: run `make load`."]
    rows = []
    for r in part["runs"]:
        o, m = r["overload"], r["memory"]
        cpu = f"{r['server_cpu_ms']:g}" + (f" / {r['client_cpu_ms']:g}" if "client_cpu_ms" in r else "") + " ms"
        rows.append([r["model"], CLIENTS.get(r.get("client", "gradio_client"), r.get("client")),
                     f"{r['sessions']} × {r['questions']}", f"{r['answered']:,}", str(r["errors"]),
                     str(r["differ_from_ask"]), f"{r['p50_ms']:,} ms", f"**{r['p95_ms']:,} ms**",
                     over_floor(r["p95_ms"], r), f"{r['rps']:g}",
                     cpu, f"{o['callers']}: {o['answered']} / {o['queue_full']} / {o['other_errors']}",
                     f"{m['before_mb']} → {m['after_mb']} MB over {m['requests']:,} requests"])
    out = table(["model", "sessions call /chat with", "sessions × questions", "answered", "errors", "replies ≠ `bot.ask`",
                 "p50", "p95", "p95 ÷ floor", "req/s", "CPU per call: server / clients",
                 "overload, callers: answered / queue full / other errors", "memory"], rows, numeric_from=3)
    for r in part["runs"]:
        out += ["", machine_line(r.get("machine", {}), r["model"])]
    return out


# ---- copied text --------------------------------------------------------------------------------------


def routes() -> list[str]:
    """The route table of docs/SECURITY.md, which tests/test_exposure.py looks for in the README."""
    found = ROUTES.search((ROOT / "docs" / "SECURITY.md").read_text("utf-8"))
    if not found:
        raise SystemExit("docs/SECURITY.md has no <!-- routes --> … <!-- /routes --> table")
    return found.group(1).rstrip("\n").splitlines()


BLOCKS: dict[str, Callable[[], list[str]]] = {
    "eval-test": lambda: eval_half("test"), "eval-tune": lambda: eval_half("tune"), "eval-by-kind": eval_by_kind,
    "decision": decision, "readme-eval": readme_eval, "readme-speed": readme_speed, "readme-serving": readme_serving, "perf-models": perf_models,
    "perf-quick": perf_quick, "perf-build": perf_build, "perf-scale": perf_scale, "perf-api": perf_api, "perf-load": perf_load,
    "routes": routes,
    "ranker": ranker,
    "rules": rules,
}


# ---- files --------------------------------------------------------------------------------------------


def targets() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "deploy" / "README.md"]


def rendered(text: str, where: str = "") -> str:
    """text with every generated block written from its data."""
    def block(match: re.Match) -> str:
        name = match.group(2)
        if name not in BLOCKS:
            raise SystemExit(f"{where}: unknown generated block {name!r} (known: {', '.join(BLOCKS)})")
        body = "\n".join(BLOCKS[name]()).strip("\n")
        return f"{match.group(1)}{body}\n\n{match.group(4)}"

    return BLOCK.sub(block, text)


def _changes() -> Iterator[tuple[Path, str, str]]:
    """(file, its text, its text with every generated block written) for every file that would change."""
    for path in targets():
        if path.is_file():
            text = path.read_text("utf-8")
            new = rendered(text, str(path.relative_to(ROOT)))
            if new != text:
                yield path, text, new


def stale() -> list[tuple[Path, str]]:
    """(file, unified diff) for every file whose generated blocks differ from what the data gives."""
    out = []
    for path, text, new in _changes():
        name = str(path.relative_to(ROOT))
        diff = "".join(difflib.unified_diff(text.splitlines(True), new.splitlines(True), name, name + " (generated)"))
        out.append((path, diff))
    return out


def write() -> list[Path]:
    changed = []
    for path, _, new in _changes():
        path.write_text(new, "utf-8")
        changed.append(path)
    return changed


def refresh_eval(model: str | None) -> None:
    """Run both halves of every question set and save them in docs/data (takes minutes: builds indexes)."""
    git = lambda *a: subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    commit = git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "--", "qa") else "")
    name = model or subprocess.run([sys.executable, "-c", "from qa.models import DEFAULT_MODEL; print(DEFAULT_MODEL)"],
                                   cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    for split in ("test", "tune"):
        command = [sys.executable, "-m", "qa", "eval", "tests/data/sets", "--split", split, "--json"]
        command += ["--model", model] if model else []
        print("running:", " ".join(command[1:]), file=sys.stderr)
        out = subprocess.run(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # its progress shows on stderr
        if out.returncode != 0:
            raise SystemExit(f"qa eval failed (exit {out.returncode})")
        data = {"_meta": {"split": split, "model": Path(name).name, "commit": commit,
                          "date": time.strftime("%Y-%m-%d %H:%M"),
                          "source": f"python -m qa eval tests/data/sets --split {split} --json"
                                    + (f" --model {model}" if model else "")}}
        data.update(json.loads(out.stdout))
        (DATA / f"eval-{split}.json").write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 with a diff if a block is out of date")
    p.add_argument("--refresh-eval", action="store_true", help="run qa eval on both halves first (slow)")
    p.add_argument("--model", default=None, help="with --refresh-eval: the model to evaluate (default: the default)")
    args = p.parse_args(argv)
    if args.check:
        drift = stale()
        for _, diff in drift:
            print(diff)
        if drift:
            print("generated blocks are out of date: run python docs/generate.py", file=sys.stderr)
        return 1 if drift else 0
    if args.refresh_eval:
        refresh_eval(args.model)
    for path in write():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
