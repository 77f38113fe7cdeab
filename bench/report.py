"""bench/results.json -> bench/results.md: the tables the README quotes."""

from __future__ import annotations

TARGETS = {"ask": 3.0, "retrieve": 2.5, "cli": 1.0, "app": 3.0, "rss": 400.0, "recall": 0.98, "p50_100k": 5.0}
RATIO = 1.5  # warm ask and retrieve, relative to one query encode


def _mark(value: float, target: float, higher_is_better: bool = False) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "met" if ok else "**missed**"


def _machine(r: dict) -> str:
    m = r["machine"]
    load = ", ".join(f"{x:g}" for x in m.get("load_avg", []))
    busy = r.get("cpu_busy_before")
    busy = f"; other processes used {busy:.0%} of the CPUs just before" if busy is not None else ""
    return (f"{m.get('date', '?')}, {m.get('cpu', '?')} ({m.get('cores', '?')} cores, shared), Python "
            f"{m.get('python', '?')}, commit {m.get('commit', '?')}; load average (1, 5, 15 min) when saved {load}{busy}")


def warm(r: dict) -> list[str]:
    t = TARGETS
    encode = r["encode_onnx"]["median"]

    def target(name: str) -> str:
        # The issue's targets are absolute, and also "within 1.5x of the fastest single-query encode
        # measured here": the ratio to the ONNX encode of the same run is what does not depend on the day.
        median = r[name]["median"]
        return (f"≤ {t[name]:g} ms: {_mark(median, t[name])}; {median / encode:.2f}× the ONNX encode: "
                f"{_mark(median / encode, RATIO)} (≤ {RATIO:g}×)")

    rows = [
        ("`bot.ask` (whole answer)", r["ask"], target("ask")),
        ("`bot.retrieve` (k=5)", r["retrieve"], target("retrieve")),
        ("query encode, ONNX (`OnnxEmbedder`)", r["encode_onnx"], ""),
        ("query encode, sentence-transformers", r["encode_st"], ""),
        ("`bot.ask` minus its query encoding", r["ask_without_encode"], ""),
    ]
    out = [
        f"### Warm latency, seed index ({r['turns']} dev-set turns × {r['rounds']} rounds, asked as `qa/evaluate.py` does)",
        "",
        "| | median | p95 | target |",
        "|---|---:|---:|---|",
    ]
    out += [f"| {name} | {s['median']:.2f} ms | {s['p95']:.2f} ms | {target} |" for name, s, target in rows]
    out += ["", f"The ONNX encoder is {r['st_over_onnx']:.1f}× faster than sentence-transformers on the same query; "
            f"encoding is {r['encode_in_ask']['median'] / r['ask']['median']:.0%} of a median `ask`"
            + (f" ({r['asks_encoding_twice']:.0%} of the asks encode a second text: the query's missing words, "
               "in `decision.Evidence`)." if r.get("asks_encoding_twice") else ".")]
    return out


def cold(r: dict) -> list[str]:
    t = TARGETS
    cli, app = r["cli"], r.get("app", {})
    out = ["### Cold start (fresh process, files in the page cache)", "",
           "| | median | min | runs | target |", "|---|---:|---:|---:|---|"]
    s = cli["to_answer_s"]
    out.append(f"| `python -m qa ask \"…\" --index <seed>`: launch → answer printed | {s['median']:.2f} s | "
               f"{s['min']:.2f} s | {s['n']} | ≤ {t['cli']:g} s: {_mark(s['median'], t['cli'])} |")
    if app and not app.get("missing"):
        s = app["to_200_s"]
        out.append(f"| `python app.py --index <seed> --port P`: launch → first HTTP 200 | {s['median']:.2f} s | "
                   f"{s['min']:.2f} s | {s['n']} | ≤ {t['app']:g} s: {_mark(s['median'], t['app'])} |")
    imports = cli["imports"]
    heavy = ", ".join(imports["heavy_imported"]) or "none of torch, sentence_transformers, transformers, gradio"
    out += ["", f"`python -X importtime -m qa ask`: imports take {imports['total_s']:.2f} s in all; imported: {heavy}. "
            "Largest top-level imports: " + ", ".join(f"{k} {v:.2f} s" for k, v in imports["top"][:6]) + "."]
    if cli.get("phases"):
        out += ["", "Where the CLI's time goes (one run, timed in-process after interpreter start): "
                + ", ".join(f"{k} {v:.2f} s" for k, v in cli["phases"]["steps"]) + "."]
    if app and not app.get("missing"):
        out += ["", f"libtorch mapped into the app process: {'yes' if app['torch_loaded'] else 'no'}."]
    return out


def memory(r: dict) -> list[str]:
    out = ["### Memory (resident set, seed index)", "", "| process | RSS | peak RSS (VmHWM) | target |", "|---|---:|---:|---|"]
    app = r.get("app", {})
    if app and not app.get("missing"):
        m = app["after_warm_up"]
        out.append(f"| `app.py` after start | {app['after_start']['VmRSS']:.0f} MB | {app['after_start']['VmHWM']:.0f} MB | |")
        out.append(f"| `app.py` after {app['warm_up_requests']} `/chat` requests | {m['VmRSS']:.0f} MB | {m['VmHWM']:.0f} MB | "
                   f"≤ {TARGETS['rss']:g} MB: {_mark(m['VmRSS'], TARGETS['rss'])} |")
    if app and "idle_cpu_share" in app:
        out_note = f"Idle, the app uses {app['idle_cpu_share']:.1%} of one core (10 s with no requests, after the warm-up)."
    else:
        out_note = ""
    lib = r.get("library")
    if lib:
        out.append(f"| `qa.load` + every dev question, no UI | {lib['VmRSS']:.0f} MB | {lib['VmHWM']:.0f} MB | |")
    return out + (["", out_note] if out_note else [])


def scale(r: dict) -> list[str]:
    sizes = sorted(r["sizes"].items(), key=lambda kv: int(kv[0]))
    out = ["### Scale (corpora assembled from documentation and docstrings on this machine)", "",
           "| chunks | sentences | docs | index | embedder | build | embedding: texts/s (per CPU-s) | chunks/s "
           "| disk (without the 90 MB ONNX encoder) | build peak RSS | load | retrieve p50 | retrieve p95 | ask p50 | first ask (a typo) "
           "| query RSS | load avg: build; queries |",
           "|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for _, e in sizes:
        b, q = e["build"], e["query"]
        emb = "sentence-transformers" if b["embedder"] == "st" else "ONNX"
        out.append(
            f"| {b['chunks']:,} | {b['sentences']:,} | {b['documents']:,} | {b['index_type']} | {emb} | {b['seconds']:.0f} s | "
            f"{b['texts_per_s']:.0f} ({b.get('texts_per_cpu_s') or 0:.0f}) | {b['chunks_per_embed_s']:.0f} | "
            f"{b['disk_mb_without_encoder']:.0f} MB | {b['memory']['VmHWM']:.0f} MB | {q['load_s']:.1f} s | "
            f"{q['retrieve']['median']:.2f} ms | {q['retrieve']['p95']:.2f} ms | {q['ask']['median']:.2f} ms | "
            f"{q.get('first_ask_ms', float('nan')):.0f} ms | {q['memory']['VmRSS']:.0f} MB | "
            f"{' → '.join(f'{x:g}' for x in b.get('load_avg', []))}; {' → '.join(f'{x:g}' for x in q.get('load_avg', []))} |")
    notes = []
    for size, e in sizes:
        if "build_onnx" in e:
            o, b = e["build_onnx"], e["build"]
            notes.append(f"Embedding throughput on the ~{int(size):,} corpus: sentence-transformers "
                         f"{b['texts_per_s']:.0f} texts/s ({b['texts_per_cpu_s']:.0f} per CPU-second), ONNX "
                         f"{o['texts_per_s']:.0f} texts/s ({o['texts_per_cpu_s']:.0f} per CPU-second), same texts, same run.")
    for size, e in sizes:
        q = e["query"]
        notes.append(f"~{int(size):,}: of a median `retrieve`, query encoding {q['encode']['median']:.2f} ms and the "
                     f"FAISS search (top 50) {q['faiss_search']['median']:.2f} ms; the rest is BM25 and fusion.")
    if any(e["build"]["embedder"] == "onnx" for _, e in sizes):
        notes.append("Rows embedded with ONNX ran the same `qa.build_index` with `embedder=OnnxEmbedder(...)` (vectors equal "
                     "to sentence-transformers' to cosine ≥ 0.9999, tests/test_encoder.py): a sentence-transformers build of "
                     "that size takes hours on 2 shared cores. With a custom embedder `build_index` chunks with its rough "
                     "token estimate rather than the tokenizer, so chunk boundaries differ slightly from a default build.")
    notes.append("Queries: the dev questions plus 173 phrases of 4–10 words sampled from each corpus, 3 rounds; they are "
                 "longer than the dev questions, so encoding takes longer than on the seed index. Builds and queries "
                 "may come from different runs (`--requery` measures the queries again at a quieter moment); the last "
                 "column gives the load average (1 min) at the start and end of each.")
    notes.append("Build time is wall time with the packages already imported; embedding throughput counts every "
                 "text sent to the model (chunks and sentences) per second of `embed` calls, and per CPU-second of the "
                 "process (all threads), which moves less with other jobs on the machine. chunks/s = chunks indexed per "
                 "second of embedding (their sentences included).")
    out += [""] + [f"- {n}" for n in notes]
    big = [(s, e) for s, e in sizes if "recall" in e["query"]]
    for size, e in big:
        rec = e["query"]["recall"]
        params = (e.get("rebuild") or e["build"]).get("hnsw") or {"m": 32, "ef_construction": 80}
        out += ["", f"HNSW at {e['build']['chunks']:,} chunks (M={params['m']}, efConstruction={params['ef_construction']}): "
                f"recall@{rec['k']} against exact "
                f"search over the same vectors ({e['query']['queries']} queries); exact search (flat) takes "
                f"{rec['exact_search_ms']:.2f} ms.", "",
                "| efSearch | recall@10 | search (top 50) |", "|---:|---:|---:|"]
        for row in rec["by_ef"]:
            mark = " (default)" if row["ef_search"] == rec["default_ef"] else ""
            out.append(f"| {row['ef_search']}{mark} | {row['recall']:.3f} | {row['search_ms']:.2f} ms |")
        if rec.get("by_query"):
            out += ["", f"At efSearch {rec['default_ef']}, by kind of query: " + "; ".join(
                f"{name} {value:.3f}" for name, value in rec["by_query"].items()) + "."]
        if e["query"].get("sweep"):
            out += ["", f"Other HNSW settings over the same {e['build']['chunks']:,} vectors (recall@10 against exact search; "
                    "search time for the top 50, as `retrieve` asks):", "",
                    "| metric | M | efConstruction | build | efSearch | recall@10 | search |", "|---|---:|---:|---:|---:|---:|---:|"]
            for row in e["query"]["sweep"]:
                out.append(f"| {row['metric']} | {row['m']} | {row['ef_construction']} | {row['build_s']:.0f} s | "
                           f"{row['ef_search']} | {row['recall']:.3f} | {row['search_ms']:.2f} ms |")
        default = next(row["recall"] for row in rec["by_ef"] if row["ef_search"] == rec["default_ef"])
        p50 = e["query"]["retrieve"]["median"]
        out += ["", f"Targets: recall@10 ≥ {TARGETS['recall']:g}: {default:.3f}, {_mark(default, TARGETS['recall'], True)}; "
                f"retrieve p50 ≤ {TARGETS['p50_100k']:g} ms: {p50:.2f} ms, {_mark(p50, TARGETS['p50_100k'])}."]
    inc = [(s, e) for s, e in sizes if "incremental" in e or "rebuild" in e]
    if inc:
        out += ["", "### Incremental rebuild", "", "`build_index` into the folder of an existing index: only texts "
                "whose vectors are not there already are embedded.", "",
                "| corpus | rebuild | embedded | reused | time | full build |", "|---|---|---:|---:|---:|---:|"]
    for size, e in inc:
        full = e["build"]
        if "incremental" in e:
            i, b = e["incremental"], e["incremental"]["build"]
            out.append(f"| ~{int(size):,} chunks | one document edited (a sentence added mid-document; "
                       f"{i['edit']['chunks_before']} chunks before) | {b['embedded']:,} | {b['reused']:,} | "
                       f"{b['seconds']:.1f} s | {full['seconds']:.0f} s |")
        if "rebuild" in e:
            b = e["rebuild"]
            what = "nothing changed (new HNSW settings" + (
                f": M={b['hnsw']['m']}, efConstruction={b['hnsw']['ef_construction']})" if b.get("hnsw") else ")")
            out.append(f"| ~{int(size):,} chunks | {what} | {b['embedded']:,} | {b['reused']:,} | "
                       f"{b['seconds']:.1f} s | {full['seconds']:.0f} s |")
    return out


def build(r: dict) -> list[str]:
    """bench/build.py: the SQuAD articles indexed from cold, against one sentence-transformers pass."""
    small = r["small"]
    lines = ["### Building an index (`python bench/build.py`)", "",
             f"Model {r['model']}, sentence vectors `{r.get('design', '?')}`; the ONNX export was in the model cache "
             "(only a machine's first build makes it).", "",
             "| | wall time | texts embedded | texts/s | KB/s | peak RSS |", "|---|---:|---:|---:|---:|---:|"]
    for name, row in (("build, eight SQuAD articles", small), ("build, the same ten times over", r.get("large"))):
        if row:
            lines.append(f"| {name} ({row['kb']:.0f} KB, {row['chunks']} chunks) | {row['wall_s']:.1f} s | "
                         f"{row['embedded']} | {row['texts_per_s']:.1f} | {row['kb_per_s']:.2f} | {row['peak_rss_mb']:.0f} MB |")
    st = r.get("sentence_transformers")
    if st:
        lines.append(f"| sentence-transformers, {st['texts']} pieces of ~1,000 characters | {st['wall_s']:.1f} s "
                     f"(encode {st['encode_s']:.1f} s) | {st['texts']} | {st['texts'] / st['encode_s']:.1f} | "
                     f"{small['kb'] / st['wall_s']:.2f} | {st['peak_rss_mb']:.0f} MB |")
        lines += ["", f"Build ÷ sentence-transformers pass: **{r['ratio_wall']:.2f}×** (whole processes; target ≤ 1.2×: "
                      f"{_mark(r['ratio_wall'], 1.2)}), {r['ratio_build_index_to_encode']:.2f}× (`build_index` ÷ `encode`)."]
    seed = r.get("seed")
    if seed:
        lines += ["", f"Seed profile into a new index folder: median {seed['build_median_s']:.2f} s against "
                      f"{seed['st_median_s']:.2f} s for `import sentence_transformers` + loading the model: "
                      f"**{seed['ratio']:.2f}×** (target ≤ 0.5×: {_mark(seed['ratio'], 0.5)})."]
    return lines


def render(results: dict) -> str:
    lines = ["## Performance", "",
             "Figures from `make bench` (`bench/run.py`; `make bench BENCH=--scale` adds the scale and incremental "
             "parts). "
             "The machine is shared with other jobs, so absolute figures move by 10–30 % between runs; each table "
             "was measured in one run, its rows interleaved where they are compared.", ""]
    parts = [("warm", warm), ("cold", cold), ("memory", memory), ("build", build)]
    parts += [(k, build) for k in sorted(results) if k.startswith("build-")] + [("scale", scale)]
    for part, fn in parts:
        if part in results:
            r = results[part]
            lines += fn(r) + ["", f"<sub>{_machine(r)}</sub>", ""]
    for pause in results.get("pauses", []):
        lines.append(f"<sub>On {pause['date']} a background scale build (pid {', '.join(map(str, pause['pids']))}) was "
                     f"stopped for {pause['seconds']} s {pause.get('why', 'while the quick parts ran')}, so it would not disturb them; "
                     "its wall-clock build time includes that pause.</sub>")
    return "\n".join(lines).rstrip() + "\n"
