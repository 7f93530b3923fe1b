"""Real bounces written by real servers (tests/bounces/corpus/, with their licences): each is
recognised, read within a second, and no refusal of the sender, trouble with a mailbox, an
auto-reply or a delivery notice makes a reader bounced. Agreement with each message's
expected reason is printed per reason (issue 19's targets for it are not all met yet).

The corpus's Sisimai messages are read from MAILER_SISIMAI_DIR when it is set."""

from __future__ import annotations

import csv
import os
import time
from collections import Counter
from pathlib import Path

import pytest

from mailer.bounces import processing
from mailer.bounces.policy import ADDRESS_DEAD
from mailer.models import BounceKind

pytestmark = pytest.mark.integration

CORPUS = Path(__file__).parent / "bounces" / "corpus"


def messages() -> list[tuple[dict, bytes]]:
    found = []
    outside = os.environ.get("MAILER_SISIMAI_DIR")
    with (CORPUS / "manifest.csv").open(encoding="utf-8") as manifest:
        rows = list(csv.DictReader(manifest))
    for row in rows:
        if row["source"] == "sisimai":
            if not outside:
                continue
            path = Path(outside) / row["file"].removeprefix("sisimai/")
        else:
            path = CORPUS / row["file"]
        found.append((row, path.read_bytes()))
    return found


def test_real_bounces_are_recognised_and_never_bounce_a_reader_for_the_wrong_reason(app):
    corpus = messages()
    assert len(corpus) >= 40, "the corpus is missing"
    recognised, wrongly_bounced, slowest = 0, [], 0.0
    agree, total = Counter(), Counter()
    with app.app_context():
        for row, raw in corpus:
            began = time.perf_counter()
            report = processing.classify(raw, processing.parse(raw))
            slowest = max(slowest, time.perf_counter() - began)
            if report is None:
                continue
            recognised += 1
            reason, kind = processing.judge(report)
            total[row["expected_reason"]] += 1
            agree[row["expected_reason"]] += reason.value == row["expected_reason"]
            if kind == BounceKind.HARD and row["expected_reason"] not in ADDRESS_DEAD:
                wrongly_bounced.append((row["file"], row["expected_reason"], reason.value))
    print("\nagreement per reason:")
    for reason, count in total.most_common():
        print(f"  {reason:<14} {agree[reason]:>4}/{count}")
    assert recognised / len(corpus) >= 0.97
    assert slowest < 1.0
    assert wrongly_bounced == []
