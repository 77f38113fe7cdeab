"""Scale: build and query corpora of ~1k, ~10k and ~100k chunks; HNSW recall; incremental rebuild.

Each build and each query session runs in its own process, so its peak memory
(VmHWM) is its own and nothing is shared between sizes. The index type is whatever
`qa/vectors.py` chooses (flat below HNSW_THRESHOLD chunks, HNSW above).

Builds use the default path (sentence-transformers embeds, ONNX query encoder
exported) unless `--embedder onnx` is given: then the same `build_index` code runs
with `OnnxEmbedder` passed as `embedder=` (same vectors to cosine >= 0.9999, but
`build_index` then chunks with its rough token estimate instead of the tokenizer,
and exports no query encoder, so queries use the seed index's encoder).

Queries are the dev questions plus sentences sampled from the corpus itself, cut to
a question's length: what a user of that corpus might type.

    python bench/scale.py build CORPUS INDEX [--embedder st|onnx --encoder DIR]   (prints JSON)
    python bench/scale.py query INDEX --encoder DIR                                 (prints JSON)
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from measure import PYTHON, ROOT, Timed, child_env, load_avg, ms, proc_status, set_env, stopwatch, summary, tree_mb

N_QUERIES = 200
N_DEV = 27  # the dev set's turns come first among the queries
FIRST_QUESTION = "Where is the liecnse of the pacakge?"  # misspelt words no corpus here contains
EF_SEARCH = (32, 64, 128, 256, 512)


# ---- in the child processes ---------------------------------------------------------------------


def build(corpus: Path, index: Path, embedder: str, encoder: Path | None) -> dict:
    set_env()
    import qa
    from qa.embedding import OnnxEmbedder, SentenceTransformerEmbedder
    from qa.models import MINILM_MODEL

    options = {"model": MINILM_MODEL}  # the scale figures are MiniLM's (384-d)
    if embedder == "onnx":
        options["embedder"] = OnnxEmbedder(encoder, MINILM_MODEL, 384)
    else:
        import sentence_transformers  # noqa: F401  (its ~4 s import is not embedding time; excluded from both)
    spies = [Timed(SentenceTransformerEmbedder, "embed"), Timed(OnnxEmbedder, "embed")]
    load_before, cpu = load_avg(), time.process_time()
    with stopwatch() as t:
        report = qa.build_index(corpus, index, **options)
    cpu = time.process_time() - cpu
    embed_s, embed_cpu_s = sum(s.seconds for s in spies), sum(s.cpu_seconds for s in spies)
    return {
        "embedder": embedder, "seconds": t(), "cpu_s": cpu, "embed_s": embed_s, "embed_cpu_s": embed_cpu_s,
        "load_avg": [load_before, load_avg()], "documents": report.documents,
        "chunks": report.chunks, "sentences": report.sentences, "embedded": report.embedded,
        "reused": report.reused, "index_type": report.index_type,
        "texts_per_s": report.embedded / embed_s if embed_s else None,
        "texts_per_cpu_s": report.embedded / embed_cpu_s if embed_cpu_s else None,
        "chunks_per_embed_s": report.chunks / embed_s if embed_s and report.reused == 0 else None,
        "disk_mb": tree_mb(index), "disk_mb_without_encoder": sum(
            p.stat().st_size for p in index.iterdir() if p.is_file()) / 1e6,
        "memory": proc_status(), "hnsw": _hnsw_params(index),
    }


def _hnsw_params(index: Path) -> dict | None:
    """M and efConstruction of the index just written (None for exact search)."""
    import faiss

    manifest = json.loads((index / "manifest.json").read_text())
    vectors = faiss.read_index(str(index / manifest["files"]["vectors"]["name"]))
    if not hasattr(vectors, "hnsw"):
        return None
    return {"m": int(vectors.hnsw.nb_neighbors(1)), "ef_construction": int(vectors.hnsw.efConstruction)}


def _queries(bot, n: int, seed: int = 0) -> list[str]:
    from warm import dev_items

    rng = random.Random(seed)
    queries = [t for item in dev_items() for t in item["turns"]][:N_DEV]
    texts = [d.text for d in bot.data.documents.values()]
    while len(queries) < n:
        text = rng.choice(texts)
        at = rng.randrange(len(text))
        words = re.findall(r"[^\W\d_][\w'-]*", text[at : at + 400])[1:]
        if len(words) >= 6:
            queries.append(" ".join(words[: rng.randint(4, 10)]) + "?")
    return queries


def query(index: Path, encoder: Path, rounds: int = 3, sweep: bool = False) -> dict:
    set_env()
    import numpy as np

    import qa
    from qa.embedding import OnnxEmbedder

    with stopwatch() as t:
        bot = qa.load(index)
    load_s = t()
    if not isinstance(bot.encoder, OnnxEmbedder):  # an index built with --embedder onnx has no encoder of its own
        bot.encoder = OnnxEmbedder(encoder, bot.manifest["model"]["name"], bot.manifest["model"]["dim"])
    queries = _queries(bot, N_QUERIES)
    with stopwatch() as t:
        bot.ask(FIRST_QUESTION)  # the first misspelt word builds the spelling index: the slowest ask there is
    first_ask_ms = ms(t())
    for q in queries[:20]:
        bot.ask(q)
    load_before = load_avg()
    vectors = np.stack([bot.encode(q) for q in queries])
    index_ = bot.data.vectors
    times = {"retrieve": [], "ask": [], "encode": [], "faiss_search": []}
    for _ in range(rounds):
        for q, v in zip(queries, vectors):
            with stopwatch() as t:
                bot.retrieve(q)
            times["retrieve"].append(ms(t()))
            with stopwatch() as t:
                bot.encode(q)
            times["encode"].append(ms(t()))
            with stopwatch() as t:
                index_.search(v.reshape(1, -1), 50)
            times["faiss_search"].append(ms(t()))
        for q in queries:
            with stopwatch() as t:
                bot.ask(q)
            times["ask"].append(ms(t()))
    out = {k: summary(v) for k, v in times.items()}
    out |= {"load_s": load_s, "first_ask_ms": first_ask_ms, "load_avg": [load_before, load_avg()],
            "queries": len(queries), "rounds": rounds, "memory": proc_status(),
            "index_type": bot.manifest.get("index_type"), "chunks": index_.ntotal}
    if hasattr(index_, "hnsw"):
        out["recall"] = recall(index_, vectors)
        out["recall"]["by_query"] = {  # the dev questions are about another corpus: a harder, flatter neighbourhood
            "dev questions": _recall_of(index_, vectors[:N_DEV], out["recall"]["default_ef"]),
            "sampled from the corpus": _recall_of(index_, vectors[N_DEV:], out["recall"]["default_ef"]),
        }
        if sweep:
            out["sweep"] = hnsw_sweep(index_.reconstruct_n(0, index_.ntotal), vectors)
    return out


def _recall_of(hnsw, queries, ef: int, k: int = 10) -> float:
    import faiss

    exact = faiss.IndexFlatIP(hnsw.d)
    exact.add(hnsw.reconstruct_n(0, hnsw.ntotal))
    _, truth = exact.search(queries, k)
    hnsw.hnsw.efSearch, default = ef, hnsw.hnsw.efSearch
    _, found = hnsw.search(queries, k)
    hnsw.hnsw.efSearch = default
    return sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), truth.tolist())) / (k * len(queries))


SWEEP = (("ip", 32, 80), ("l2", 32, 80), ("ip", 32, 200), ("l2", 32, 200), ("ip", 48, 200))


def hnsw_sweep(vectors, queries, k: int = 10) -> list[dict]:
    """Other HNSW settings over the same vectors: build time, recall@k and search time by efSearch.

    L2 on unit vectors ranks exactly as inner product does (|a-b|^2 = 2 - 2a.b), but faiss's
    HNSW graph heuristics are tuned for L2.
    """
    import faiss

    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(queries, k)
    rows = []
    for metric, m, ef_construction in SWEEP:
        index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2)
        index.hnsw.efConstruction = ef_construction
        with stopwatch() as t:
            index.add(vectors)
        build_s = t()
        for ef in (64, 128, 256, 512):
            rows.append({"metric": metric, "m": m, "ef_construction": ef_construction, "build_s": build_s,
                         "ef_search": ef, **_at_ef_search(index, ef, queries, truth, k)})
    return rows


def _at_ef_search(index, ef: int, queries, truth, k: int) -> dict:
    """recall@k against truth (the exact top k of each query) and the median search time for the top 50
    (as retrieve asks), with the HNSW index searching at efSearch ef."""
    index.hnsw.efSearch = ef
    _, found = index.search(queries, k)
    hits = sum(len(set(a) & set(b)) for a, b in zip(found.tolist(), truth.tolist()))
    search = []
    for v in queries:
        with stopwatch() as t:
            index.search(v.reshape(1, -1), 50)
        search.append(ms(t()))
    return {"recall": hits / (k * len(queries)), "search_ms": summary(search)["median"]}


def recall(hnsw, queries, k: int = 10) -> dict:
    """recall@k of the HNSW index against exact search over the same vectors, at several efSearch."""
    import faiss

    exact = faiss.IndexFlatIP(hnsw.d)
    exact.add(hnsw.reconstruct_n(0, hnsw.ntotal))
    flat_times = []
    for v in queries:
        with stopwatch() as t:
            exact.search(v.reshape(1, -1), 50)
        flat_times.append(ms(t()))
    _, truth = exact.search(queries, k)
    default_ef = hnsw.hnsw.efSearch
    rows = []
    for ef in sorted(set(EF_SEARCH) | {default_ef}):
        rows.append({"ef_search": ef, **_at_ef_search(hnsw, ef, queries, truth, k)})
    hnsw.hnsw.efSearch = default_ef
    return {"k": k, "default_ef": default_ef, "by_ef": rows, "exact_search_ms": summary(flat_times)["median"]}


# ---- in the parent --------------------------------------------------------------------------------


def _child(*args: str, timeout: float = 4 * 3600) -> dict:
    cmd = ["nice", "-n", "10", PYTHON, str(Path(__file__)), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(args[:1])} failed: {proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def edit_one_document(corpus: Path) -> dict:
    """Change one mid-sized document: a sentence added to a paragraph in its middle."""
    from qa.chunking import chunk_document
    from qa.corpus import read_document

    files = sorted(corpus.iterdir())
    best = None
    for path in files:
        n = len(chunk_document(read_document(path, path.name)))
        if 8 <= n <= 30:
            best = (path, n)
            break
    path, n = best or (files[0], None)
    text = path.read_text("utf-8")
    paragraphs = text.split("\n\n")
    middle = len(paragraphs) // 2
    paragraphs[middle] += " This sentence was added to measure an incremental rebuild."
    path.write_text("\n\n".join(paragraphs), "utf-8")
    return {"file": path.name, "chunks_before": n}


def run(workdir: Path, sizes: list[int], encoder: Path, embedder: str = "st", big_embedder: str = "onnx",
        big_from: int = 50_000, incremental_size: int | None = 10_000, compare_at: int | None = 1_000,
        log=print, save=lambda results: None, requery: dict | None = None, before_query=lambda: None,
        sweep: bool = False, rebuild: bool = False) -> dict:
    """Every size: corpus, build (child), query (child); the incremental rebuild at incremental_size;
    at compare_at also a build with the ONNX embedder, to compare the two embedders' throughput.
    save(results) is called after each size, so finished sizes survive a later failure.
    requery: earlier results by size; a size found there whose index still exists is only queried again
    (for a quieter moment on a shared machine), its build figures kept; with rebuild, it is first rebuilt
    in place (every vector reused: what changing index settings costs)."""
    from texts import build_pool, make_corpus

    with stopwatch() as t:
        pool = build_pool(workdir / "pool")
    log(f"  text pool: {len(pool):,} documents, ~{sum(d['chunks'] for d in pool):,} chunks ({t():.0f} s)")
    results: dict = {"sizes": {}, "pool_documents": len(pool)}
    for size in sizes:
        how = big_embedder if size >= big_from else embedder
        corpus, index = workdir / f"corpus-{size}", workdir / f"index-{size}-{how}"
        old = (requery or {}).get(str(size))
        if old and old["build"]["embedder"] == how and (index / "manifest.json").is_file():
            entry = dict(old)
            if rebuild:
                log(f"  ~{size:,}: rebuilding {index} from the same corpus (every vector reused) …")
                entry["rebuild"] = r = _child("build", str(corpus), str(index), "--embedder", how, "--encoder", str(encoder))
                log(f"    {r['embedded']} embedded, {r['reused']:,} reused, {r['seconds']:.0f} s, HNSW {r['hnsw']}")
            log(f"  ~{size:,}: querying the existing {index} again …")
            before_query()
            entry["query"] = q = _child("query", str(index), "--encoder", str(encoder), *(["--sweep"] if sweep else []))
            log(f"    retrieve p50 {q['retrieve']['median']:.2f} ms p95 {q['retrieve']['p95']:.2f} ms; "
                f"ask p50 {q['ask']['median']:.2f} ms" + (f"; recall@10 {_default_recall(q):.3f}" if "recall" in q else ""))
            results["sizes"][str(size)] = entry
            save(results)
            continue
        shutil.rmtree(index, ignore_errors=True)
        made = make_corpus(workdir / "pool", pool, size, corpus)
        log(f"  ~{size:,}: {made['documents']:,} documents, {made['chars'] / 1e6:.1f} M chars; building with {how} …")
        b = _child("build", str(corpus), str(index), "--embedder", how, "--encoder", str(encoder))
        log(f"    built {b['chunks']:,} chunks + {b['sentences']:,} sentences, {b['index_type']}, {b['seconds']:.0f} s "
            f"({b['texts_per_s']:.0f} texts/s, {b['texts_per_cpu_s']:.0f} per CPU-second), peak {b['memory']['VmHWM']:.0f} MB, "
            f"load average {b['load_avg']}")
        entry = {"build": b, "corpus": made}
        if size == compare_at and how != "onnx":
            other = workdir / f"index-{size}-onnx"
            shutil.rmtree(other, ignore_errors=True)
            entry["build_onnx"] = _child("build", str(corpus), str(other), "--embedder", "onnx", "--encoder", str(encoder))
            log(f"    the same corpus embedded with ONNX: {entry['build_onnx']['texts_per_s']:.0f} texts/s")
            shutil.rmtree(other, ignore_errors=True)
        before_query()
        q = _child("query", str(index), "--encoder", str(encoder), *(["--sweep"] if sweep else []))
        entry["query"] = q
        log(f"    retrieve p50 {q['retrieve']['median']:.2f} ms p95 {q['retrieve']['p95']:.2f} ms; "
            f"ask p50 {q['ask']['median']:.2f} ms" + (f"; recall@10 {_default_recall(q):.3f}" if "recall" in q else ""))
        if size == incremental_size:
            edited = edit_one_document(corpus)
            inc = _child("build", str(corpus), str(index), "--embedder", how, "--encoder", str(encoder))
            entry["incremental"] = {"edit": edited, "build": inc}
            log(f"    incremental: edited {edited['file']}; {inc['embedded']} embedded, {inc['reused']:,} reused, "
                f"{inc['seconds']:.1f} s (full build {b['seconds']:.0f} s)")
        results["sizes"][str(size)] = entry
        save(results)
    return results


def _default_recall(q: dict) -> float:
    r = q["recall"]
    return next(row["recall"] for row in r["by_ef"] if row["ef_search"] == r["default_ef"])


def main() -> int:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build")
    b.add_argument("corpus", type=Path)
    b.add_argument("index", type=Path)
    b.add_argument("--embedder", choices=["st", "onnx"], default="st")
    b.add_argument("--encoder", type=Path)
    q = sub.add_parser("query")
    q.add_argument("index", type=Path)
    q.add_argument("--encoder", type=Path, required=True)
    q.add_argument("--sweep", action="store_true", help="also try other HNSW settings on the same vectors")
    args = p.parse_args()
    if args.cmd == "build":
        out = build(args.corpus, args.index, args.embedder, args.encoder)
    else:
        out = query(args.index, args.encoder, sweep=args.sweep)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
