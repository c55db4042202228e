"""The category of a practice record from its text: quality, safety, progress, materials,
environment, documents or other (CONTRACT §6.4).

Chinese text is segmented into words by jieba; the features are TF-IDF weights of those words
and of character bigrams (robust to words jieba splits differently); a linear support-vector
classifier (scikit-learn) separates the categories. It is trained at first use, in about a
second, on the labelled records shipped beside this module (`labelled_records.csv`, written
for the purpose: docs/categories.md says how, and gives its per-category precision and recall
measured by cross-validation). Nothing leaves the machine."""

from __future__ import annotations

import csv
import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import jieba
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC

CATEGORIES = ("quality", "safety", "progress", "materials", "environment", "documents", "other")
LABELLED = Path(__file__).with_name("labelled_records.csv")
jieba.setLogLevel(logging.WARNING)


@dataclass(frozen=True)
class Labelled:
    text: str
    category: str
    kind: str = "log"


def read_labelled(path: Path = LABELLED) -> list[Labelled]:
    with path.open(encoding="utf-8", newline="") as fh:
        rows = [
            Labelled(r["text"], r["category"], r.get("kind") or "log") for r in csv.DictReader(fh)
        ]
    unknown = {r.category for r in rows} - set(CATEGORIES)
    if unknown:
        raise ValueError(f"{path}: categories outside {CATEGORIES}: {sorted(unknown)}")
    return rows


def _words(text: str) -> list[str]:
    return [w for w in jieba.lcut(text) if w.strip()]


def _pipeline() -> Pipeline:
    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(analyzer=_words, sublinear_tf=True)),
            ("bigrams", TfidfVectorizer(analyzer="char", ngram_range=(2, 2), sublinear_tf=True)),
        ]
    )
    return Pipeline(
        [("features", features), ("svm", LinearSVC(C=0.5, class_weight="balanced", random_state=0))]
    )


class Classifier:
    def __init__(self, rows: Sequence[Labelled]) -> None:
        self._model = _pipeline().fit([r.text for r in rows], [r.category for r in rows])

    def categories(self, texts: Iterable[str]) -> list[str]:
        texts = list(texts)
        return [str(c) for c in self._model.predict(texts)] if texts else []

    def category(self, text: str) -> str:
        return self.categories([text])[0]


@functools.cache
def default() -> Classifier:
    """The classifier trained on the shipped labelled records (once per process)."""
    return Classifier(read_labelled())


def evaluate(
    rows: Sequence[Labelled], folds: int = 5, seed: int = 20261206
) -> dict[str, dict[str, float]]:
    """Per-category precision, recall and support by stratified `folds`-fold cross-validation
    (each record predicted by a model that did not see it), plus `overall` accuracy."""
    texts, labels = [r.text for r in rows], [r.category for r in rows]
    split = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = cross_val_predict(_pipeline(), texts, labels, cv=split)
    precision, recall, _f1, support = precision_recall_fscore_support(
        labels, predicted, labels=list(CATEGORIES), zero_division=0
    )
    out = {
        c: {"precision": round(float(p), 3), "recall": round(float(r), 3), "support": int(n)}
        for c, p, r, n in zip(CATEGORIES, precision, recall, support, strict=True)
    }
    hits = sum(a == b for a, b in zip(labels, predicted, strict=True))
    out["overall"] = {"accuracy": round(hits / len(labels), 3), "records": len(labels)}
    return out
