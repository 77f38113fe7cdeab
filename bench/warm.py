"""Warm latency on the seed index: bot.ask and bot.retrieve beside the two query encoders.

Every dev question is asked turn by turn with the bot's own answers as history, as
`qa/evaluate.py` does. The four measurements are interleaved round by round, so a
burst of load from another process on this shared machine falls on all of them alike.
"""

from __future__ import annotations

from pathlib import Path

from measure import ROOT, Timed, dev_items, load_avg, ms, stopwatch, summary


def build_seed(index_dir: Path) -> dict:
    """The seed corpus built into index_dir, with the ONNX query encoder (the default path)."""
    import qa

    with stopwatch() as t:
        report = qa.build_index(ROOT / "corpus", index_dir)
    return {"seconds": t(), "chunks": report.chunks, "sentences": report.sentences}


def run(index_dir: Path, rounds: int = 7) -> dict:
    import qa
    from qa.embedding import SentenceTransformerEmbedder

    bot = qa.load(index_dir)
    items = dev_items()
    turns = [t for item in items for t in item["turns"]]
    reference = SentenceTransformerEmbedder(bot.manifest["model"]["name"])
    onnx = bot.encoder

    encode_calls: list[int] = []

    def ask_all(record: list[float], encoding: list[float] | None = None) -> None:
        for item in items:
            history: list[dict] = []
            for turn in item["turns"]:
                spy = Timed(type(onnx), "embed")
                try:
                    with stopwatch() as t:
                        answer = bot.ask(turn, history=history)
                finally:
                    spy.restore()
                record.append(ms(t()))
                if encoding is not None:
                    encoding.append(ms(spy.seconds))
                    encode_calls.append(len(spy.calls))
                history += [{"role": "user", "content": turn}, {"role": "assistant", "content": answer.text}]

    # Warm-up: first calls pay for lazy imports, model load, allocator growth.
    ask_all([])
    for turn in turns:
        bot.retrieve(turn)
        reference.embed([turn])
    times = {"ask": [], "retrieve": [], "encode_onnx": [], "encode_st": []}
    encode_in_ask: list[float] = []
    load_before = load_avg()
    for _ in range(rounds):
        ask_all(times["ask"], encode_in_ask)
        for turn in turns:
            with stopwatch() as t:
                bot.retrieve(turn)
            times["retrieve"].append(ms(t()))
        for turn in turns:
            with stopwatch() as t:
                onnx.embed([turn])
            times["encode_onnx"].append(ms(t()))
        for turn in turns:
            with stopwatch() as t:
                reference.embed([turn])
            times["encode_st"].append(ms(t()))
    rest = [a - e for a, e in zip(times["ask"], encode_in_ask)]
    out = {k: summary(v) for k, v in times.items()}
    out["encode_in_ask"] = summary(encode_in_ask)
    out["ask_without_encode"] = summary(rest)
    out["encodes_per_ask"] = sum(encode_calls) / len(encode_calls)
    out["asks_encoding_twice"] = sum(n > 1 for n in encode_calls) / len(encode_calls)
    out["encoder"] = type(onnx).__name__
    out["turns"] = len(turns)
    out["rounds"] = rounds
    out["load_avg"] = [load_before, load_avg()]
    out["st_over_onnx"] = out["encode_st"]["median"] / out["encode_onnx"]["median"]
    return out
