"""Triage quality on the labelled data, cross-validated: letters (topic, intent) and short comments.

usage: python bench/triage_quality.py [--data DIR] [--rules DIR] [--folds K]

DIR (default ../shared/data beside the repo) holds citizen_messages_dev.csv (key,id,subject,time,
text,topic), citizen_messages_dev_intent.csv (key,intent) and short_comments_dev.csv (key,text,
intent,topic; topic "none" = no topic). The hand rules of --rules are used as they are; the learned
keywords (rules/learned.toml) are learned again for each of K folds from the other K-1 folds of all
three sets, and only the held-out fold is scored: the cross-validated figures never see a file
learned on the messages they score. For comparison the bench also scores the hand rules alone and
the shipped learned.toml (learned on all of this data: in-sample, optimistic).

Figures: per-class precision/recall/F1 and macro-F1 over the labels in the gold data; for the short
comments also complaint recall and the false-ticket share (praise and other that would become a
ticket: predicted complaint, question or suggestion). Last line (cross-validated):
short_intent_macro_f1=... short_complaint_recall=... false_ticket_share=... short_topic_macro_f1=...
letters_topic_macro_f1=... letters_intent_macro_f1=... (then hand-only and in-sample figures)
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
import tempfile
import tomllib
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.triage.classifier import NEEDS_ANSWER, Classifier  # noqa: E402
from bot.triage.cli import DEFAULT_RULES_DIR  # noqa: E402
from bot.triage.learn import Labelled, learn_all, render_toml, token_set  # noqa: E402
from bot.triage.rules import LEARNED_FILE  # noqa: E402

DATA = REPO.parent / "shared" / "data"
NONE = "none"  # gold and predicted label of "no clear topic"


def read_csv(path: Path) -> list[dict]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


class Item:
    """One labelled message of a set; gold labels None where the set does not label them."""

    def __init__(self, key: str, text: str, subject: str | None, intent: str | None, topic: str | None):
        self.key, self.text, self.subject, self.intent, self.topic = key, text, subject, intent, topic
        self.tokens: frozenset[str] = frozenset()
        self.fold = 0

    def labelled(self) -> Labelled:
        return Labelled(self.text, self.intent, self.topic if self.topic != NONE else None, self.subject)


def load_sets(data: Path) -> dict[str, list[Item]]:
    intents = {r["key"]: r["intent"] for r in read_csv(data / "citizen_messages_dev_intent.csv")}
    letters = [Item(r["key"], r["text"], r.get("subject") or None, intents.get(r["key"]), r["topic"])
               for r in read_csv(data / "citizen_messages_dev.csv")]
    short = [Item(r["key"], r["text"], None, r["intent"], r["topic"] or NONE)
             for r in read_csv(data / "short_comments_dev.csv")]
    return {"letters": letters, "short": short}


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


def macro_f1(gold: list[str], pred: list[str]) -> float:
    stats = per_class(gold, pred, sorted(set(gold)))
    return sum(s[2] for s in stats.values()) / len(stats)


def report(title: str, gold: list[str], pred: list[str]) -> float:
    labels = sorted(set(gold))
    stats = per_class(gold, pred, labels)
    print(f"\n{title} ({len(gold)} messages)")
    print(f"{'label':<16}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}")
    for label, (p, r, f, n) in stats.items():
        print(f"{label:<16}{p:>10.3f}{r:>8.3f}{f:>8.3f}{n:>9}")
    cols = sorted(set(gold) | set(pred))
    pairs = Counter(zip(gold, pred, strict=True))
    print("confusion (rows gold, columns predicted):")
    print(" " * 16 + "".join(f"{c[:8]:>10}" for c in cols))
    for g in labels:
        print(f"{g:<16}" + "".join(f"{pairs[(g, c)]:>10}" for c in cols))
    macro = sum(s[2] for s in stats.values()) / len(stats)
    print(f"macro-F1 {macro:.3f}")
    return macro


def rules_copy(src: Path, dst: Path, learned_text: str | None) -> Path:
    """The hand rules of src in dst, with learned.toml replaced (or removed when None)."""
    shutil.copytree(src, dst)
    # No learned words: a file with settings only (an absent file would fall back to the shipped one).
    text = learned_text if learned_text is not None else "[settings]\nintent_factor = 1\ntopic_factor = 1\n"
    (dst / LEARNED_FILE).write_text(text, encoding="utf-8")
    return dst


def classify(classifier: Classifier, items: list[Item], predictions: dict) -> None:
    for it in items:
        c = classifier.classify(it.text, it.subject)
        predictions[id(it)] = (c.intent, c.topic or NONE, c.needs_answer)


def figures(sets: dict[str, list[Item]], pred: dict, title: str | None) -> dict[str, float]:
    """The key figures of one run; prints per-class tables when titled."""
    show = report if title else (lambda _t, g, p: macro_f1(g, p))
    letters, short = sets["letters"], sets["short"]
    out = {}
    out["letters_topic_macro_f1"] = show(f"{title}: letters, topic", [i.topic for i in letters],
                                         [pred[id(i)][1] for i in letters])
    li = [i for i in letters if i.intent]
    out["letters_intent_macro_f1"] = show(f"{title}: letters, intent", [i.intent for i in li],
                                          [pred[id(i)][0] for i in li])
    out["short_intent_macro_f1"] = show(f"{title}: short comments, intent", [i.intent for i in short],
                                        [pred[id(i)][0] for i in short])
    out["short_topic_macro_f1"] = show(f"{title}: short comments, topic", [i.topic for i in short],
                                       [pred[id(i)][1] for i in short])
    complaints = [i for i in short if i.intent == "complaint"]
    out["short_complaint_recall"] = sum(pred[id(i)][0] == "complaint" for i in complaints) / len(complaints)
    quiet = [i for i in short if not NEEDS_ANSWER[i.intent]]
    out["false_ticket_share"] = sum(pred[id(i)][2] for i in quiet) / len(quiet)
    if title:
        print(f"\n{title}: short comments complaint recall {out['short_complaint_recall']:.3f}, "
              f"false-ticket share {out['false_ticket_share']:.3f} (of {len(quiet)} praise/other)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--rules", type=Path, default=DEFAULT_RULES_DIR)
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()
    if not (args.data / "short_comments_dev.csv").exists():
        sys.exit(f"{args.data}: no labelled data there (give the folder with --data)")
    sets = load_sets(args.data)
    items = [it for group in sets.values() for it in group]
    # The factors of the shipped file (they are settings, not learned), else 1.
    learned_path = args.rules / LEARNED_FILE
    shipped = (tomllib.loads(learned_path.read_text(encoding="utf-8"))["settings"] if learned_path.exists()
               else {"intent_factor": 1.0, "topic_factor": 1.0})

    with tempfile.TemporaryDirectory() as tmp:
        hand = Classifier.from_dir(rules_copy(args.rules, Path(tmp) / "hand", None))
        for it in items:
            it.tokens = token_set(f"{it.subject or ''}\n{it.text}", hand.tokenizer)
        for group in sets.values():  # stratified by set: every fold holds letters and comments
            order = list(range(len(group)))
            random.Random(13).shuffle(order)
            for n, idx in enumerate(order):
                group[idx].fold = n % args.folds

        runs = {}
        pred_hand: dict = {}
        classify(hand, items, pred_hand)
        runs["hand"] = figures(sets, pred_hand, None)

        pred_in: dict = {}
        classify(Classifier.from_dir(args.rules), items, pred_in)
        runs["insample"] = figures(sets, pred_in, None)

        pred_cv: dict = {}
        for fold in range(args.folds):
            learned = learn_all([(it.tokens, it.labelled()) for it in items if it.fold != fold], hand)
            text = render_toml(learned, source=f"bench fold {fold}", intent_factor=shipped["intent_factor"],
                               topic_factor=shipped["topic_factor"])
            classifier = Classifier.from_dir(rules_copy(args.rules, Path(tmp) / f"fold{fold}", text))
            classify(classifier, [it for it in items if it.fold == fold], pred_cv)
        runs["cv"] = figures(sets, pred_cv, f"cross-validated ({args.folds} folds)")

    print("\nmacro-F1 by run (hand: hand rules only; insample: shipped learned.toml, learned on this data; "
          "cv: learned per fold, scored on the held-out fold)")
    for name, fig in runs.items():
        print(f"  {name:<9}" + "  ".join(f"{k}={v:.3f}" for k, v in fig.items()))
    keys = ["short_intent_macro_f1", "short_complaint_recall", "false_ticket_share", "short_topic_macro_f1",
            "letters_topic_macro_f1", "letters_intent_macro_f1"]
    tail = [f"{k}={runs['cv'][k]:.3f}" for k in keys]
    tail += [f"{run}_{k}={runs[run][k]:.3f}" for run in ("hand", "insample") for k in keys]
    print(" ".join(tail))


if __name__ == "__main__":
    main()
