"""Corpus BLEU (Papineni, Roukos, Ward, Zhu. "BLEU: a Method for Automatic Evaluation of Machine
Translation", ACL 2002), as image captioning reports it: BLEU-1..4 against every reference.

BLEU is a corpus statistic: clipped n-gram matches and hypothesis n-grams are summed over the
corpus before dividing, and the brevity penalty compares the corpus's hypothesis length with the
sum of each hypothesis's closest reference length (the shorter on a tie). It is not a mean of
sentence scores. The counts follow nltk's `corpus_bleu` (each hypothesis counts at least one
n-gram of each order), so the two agree; without smoothing, an order with no match gives 0.
"""

from __future__ import annotations

import collections
import math
from typing import Sequence

from zoo.text import caption_words

MAX_ORDER = 4


def _ngrams(words: Sequence[str], order: int) -> collections.Counter:
    return collections.Counter(tuple(words[start:start + order]) for start in range(len(words) - order + 1))


def corpus_bleu(references: Sequence[Sequence[Sequence[str]]], hypotheses: Sequence[Sequence[str]],
                max_order: int = MAX_ORDER) -> list[float]:
    """Cumulative BLEU-1..max_order (uniform weights) of tokenized hypotheses.

    Args:
        references: for each hypothesis, all its reference captions, each a list of words.
        hypotheses: one list of words per image.
    """
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} sets of references")
    matches = [0] * max_order
    totals = [0] * max_order
    hypothesis_length = reference_length = 0
    for image_references, hypothesis in zip(references, hypotheses):
        if not image_references:
            raise ValueError("every hypothesis needs at least one reference")
        for order in range(1, max_order + 1):
            counts = _ngrams(hypothesis, order)
            most_in_a_reference = collections.Counter()
            for reference in image_references:
                most_in_a_reference |= _ngrams(reference, order)  # | keeps the larger count
            matches[order - 1] += sum(min(count, most_in_a_reference[ngram]) for ngram, count in counts.items())
            totals[order - 1] += max(1, sum(counts.values()))
        hypothesis_length += len(hypothesis)
        reference_length += min((len(reference) for reference in image_references),
                                key=lambda length: (abs(length - len(hypothesis)), length))

    if hypothesis_length == 0:
        return [0.0] * max_order
    brevity_penalty = 1.0 if hypothesis_length > reference_length else math.exp(1 - reference_length / hypothesis_length)
    scores = []
    log_precision_sum = 0.0
    for order in range(1, max_order + 1):
        if matches[order - 1] == 0:
            scores.extend([0.0] * (max_order - order + 1))
            break
        log_precision_sum += math.log(matches[order - 1] / totals[order - 1])
        scores.append(brevity_penalty * math.exp(log_precision_sum / order))
    return scores


def bleu_scores(references: Sequence[Sequence[str]], hypotheses: Sequence[str]) -> dict[str, float]:
    """{"bleu1": ..., "bleu4": ...} of caption strings, normalized as for training (`zoo.text`)."""
    words = caption_words([caption for image_references in references for caption in image_references])
    tokenized_references, start = [], 0
    for image_references in references:
        tokenized_references.append(words[start:start + len(image_references)])
        start += len(image_references)
    scores = corpus_bleu(tokenized_references, caption_words(list(hypotheses)))
    return {f"bleu{order}": score for order, score in enumerate(scores, start=1)}
