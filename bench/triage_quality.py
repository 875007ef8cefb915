"""Triage quality on the labelled citizen messages: topic and intent macro-F1.

usage: python bench/triage_quality.py [TOPIC_CSV] [INTENT_CSV] [--rules DIR]

TOPIC_CSV has key,id,subject,time,text,topic (default ../shared/data/citizen_messages_dev.csv beside
the repo); INTENT_CSV has key,intent (default citizen_messages_dev_intent.csv there). Messages are
classified through bot.triage.cli.classify_csv, the code path of `govbot rules classify`.
Macro-F1 averages over the labels present in the gold data. Last line: topic_macro_f1=... intent_macro_f1=...
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.triage.classifier import Classifier  # noqa: E402
from bot.triage.cli import DEFAULT_RULES_DIR, classify_csv  # noqa: E402

DATA = REPO.parent / "shared" / "data"


def per_class(gold: list[str], pred: list[str], labels: list[str]) -> dict[str, tuple[float, float, float, int]]:
    """label -> (precision, recall, f1, support)"""
    pairs = Counter(zip(gold, pred, strict=True))
    gold_n, pred_n = Counter(gold), Counter(pred)
    out = {}
    for label in labels:
        tp = pairs[(label, label)]
        p = tp / pred_n[label] if pred_n[label] else 0.0
        r = tp / gold_n[label] if gold_n[label] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        out[label] = (p, r, f, gold_n[label])
    return out


def report(title: str, gold: list[str], pred: list[str]) -> float:
    labels = sorted(set(gold))
    stats = per_class(gold, pred, labels)
    print(f"\n{title} ({len(gold)} messages)")
    print(f"{'label':<16}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}")
    for label, (p, r, f, n) in stats.items():
        print(f"{label:<16}{p:>10.3f}{r:>8.3f}{f:>8.3f}{n:>9}")
    macro = sum(s[2] for s in stats.values()) / len(stats)
    print(f"macro-F1 {macro:.3f}")
    return macro


def confusion(gold: list[str], pred: list[str]) -> None:
    rows = sorted(set(gold))
    cols = sorted(set(gold) | set(pred))
    pairs = Counter(zip(gold, pred, strict=True))
    print("confusion (rows gold, columns predicted):")
    print(" " * 16 + "".join(f"{c[:10]:>11}" for c in cols))
    for g in rows:
        print(f"{g:<16}" + "".join(f"{pairs[(g, c)]:>11}" for c in cols))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("topic_csv", nargs="?", type=Path, default=DATA / "citizen_messages_dev.csv")
    ap.add_argument("intent_csv", nargs="?", type=Path, default=DATA / "citizen_messages_dev_intent.csv")
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES_DIR)
    args = ap.parse_args()

    classifier = Classifier.from_dir(args.rules)
    out = io.StringIO()
    with args.topic_csv.open(encoding="utf-8-sig", newline="") as src:
        classify_csv(src, out, classifier)
    out.seek(0)
    predicted = {row["key"]: row for row in csv.DictReader(out)}
    with args.topic_csv.open(encoding="utf-8-sig", newline="") as src:
        topic_gold = {row["key"]: row["topic"] for row in csv.DictReader(src)}
    with args.intent_csv.open(encoding="utf-8-sig", newline="") as src:
        intent_gold = {row["key"]: row["intent"] for row in csv.DictReader(src)}

    keys = list(topic_gold)
    gold = [topic_gold[k] for k in keys]
    pred = [predicted[k]["topic"] or "(none)" for k in keys]
    topic_f1 = report("topic", gold, pred)
    confusion(gold, pred)

    keys = [k for k in intent_gold if k in predicted]
    gold = [intent_gold[k] for k in keys]
    pred = [predicted[k]["intent"] for k in keys]
    intent_f1 = report("intent", gold, pred)
    confusion(gold, pred)
    print(f"topic_macro_f1={topic_f1:.3f} intent_macro_f1={intent_f1:.3f}")


if __name__ == "__main__":
    main()
