"""Tag stage on real sentences: KB layer, patterns, canonical names, the surname rule, tickers, topics."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.contract.events import CleanArticle
from streams.settings import get_settings
from streams.stages.tag import Tagger

NOW = datetime(2026, 9, 5, tzinfo=UTC)


@pytest.fixture(scope="module")
def tagger() -> Tagger:
    s = get_settings()
    return Tagger(None, s.knowledge_base, s.taxonomy)


def tag(tagger: Tagger, body: str, title: str = "Headline"):
    return tagger.tag(CleanArticle(id="a", url="https://x.example/a", source="x.example", title=title, body=body,
                                   content_type="text/plain", published_at=NOW, ingested_at=NOW,
                                   content_hash="h", word_count=1))


def ents(tagged) -> dict[str, tuple[str, str | None, int]]:
    return {e.name: (e.label, e.id, e.count) for e in tagged.entities}


def test_kb_aliases_map_to_one_canonical_entity(tagger) -> None:
    t = tag(tagger, "Vladimir Putin met bankers. President Putin said Bitcoin and BTC were welcome. Putin left.")
    e = ents(t)
    assert e["Vladimir Putin"] == ("PERSON", "person/vladimir-putin", 3)
    assert e["Bitcoin"] == ("ASSET", "asset/btc", 2)


def test_countries_and_demonyms_come_from_the_country_data(tagger) -> None:
    t = tag(tagger, "Russian officials said Russia and the Russian Federation would trade with Kazakhstan.")
    e = ents(t)
    assert e["Russia"][1] == "country/RU" and e["Kazakhstan"][1] == "country/KZ"
    labels = {x.label for x in t.entities if x.id == "country/RU"}
    assert labels == {"GPE", "NORP"}


def test_people_introduced_by_titles_or_reporting_verbs(tagger) -> None:
    t = tag(tagger, "Deputy Governor Olga Brandt spoke first. Then Mark Halloran said the plan would work.")
    e = ents(t)
    assert e["Olga Brandt"][0] == "PERSON" and e["Mark Halloran"][0] == "PERSON"
    assert e["Olga Brandt"][1] is None


def test_later_surname_joins_the_earlier_full_name(tagger) -> None:
    t = tag(tagger, "Finance Minister Ruth Okafor presented the budget. Later Okafor said more cuts were likely.")
    e = ents(t)
    assert e["Ruth Okafor"] == ("PERSON", None, 2)
    assert "Okafor" not in e


def test_ambiguous_tickers_only_in_ticker_context(tagger) -> None:
    plain = tag(tagger, "The people want one thing. PEOPLE gathered in the square. ONE more time.")
    assert not [x for x in plain.entities if x.label == "ASSET"]
    ctx = tag(tagger, "ConstitutionDAO (PEOPLE) jumped, $ONE fell and LINK/USD was flat.")
    assert {x.id for x in ctx.entities if x.label == "ASSET"} == {"asset/people", "asset/one", "asset/link"}


def test_kb_match_wins_over_a_pattern_match(tagger) -> None:
    t = tag(tagger, "CEO Andrey Kostin said VTB would pay in yuan.")
    assert ents(t)["Andrey Kostin"][:2] == ("PERSON", "person/andrey-kostin")


def test_money_and_percentages(tagger) -> None:
    t = tag(tagger, "Profits rose 12 per cent to $5.2bn, or 3.5% more than 400 million euros a year ago.")
    texts = {x.text for x in t.entities if x.label in ("MONEY", "PERCENT")}
    assert {"12 per cent", "$5.2bn", "3.5%", "400 million euros"} <= texts


def test_topics_with_scores_and_the_phrases_that_fired(tagger) -> None:
    t = tag(tagger, "New sanctions and an embargo cut banks off from SWIFT; cross-border payments moved to yuan.",
            title="Sanctions tighten")
    topics = {x.id: x for x in t.topics}
    assert topics["sanctions"].score >= 1 and "sanction*" in topics["sanctions"].phrases
    assert "cross-border payment*" in topics["cross_border_payments"].phrases
    quiet = tag(tagger, "The bank opened a new branch in the town centre on Monday.")
    assert quiet.topics == []


def test_entity_offsets_point_at_the_first_mention(tagger) -> None:
    t = tag(tagger, "Talks in Germany. Later, more talks in Germany.", title="Germany")
    germany = next(x for x in t.entities if x.name == "Germany")
    assert germany.start == 0 and germany.count == 3


def test_context_requirement_keeps_common_words_out(tagger) -> None:
    travel = tag(tagger, "Tourists need a Visa to visit. The Mir space station was mentioned too.")
    assert not [x for x in travel.entities if x.label == "PAYMENT_SYSTEM"]
    pay = tag(tagger, "Visa and Mastercard suspended card payments, and banks turned to Mir.")
    assert {x.id for x in pay.entities if x.label == "PAYMENT_SYSTEM"} == {"pay/visa", "pay/mastercard", "pay/mir"}


def test_model_entities_stop_at_a_line_break_and_need_a_letter_or_digit(tagger) -> None:
    """What a statistical model may hand the KB layer: an entity run from the title into the body,
    and a lone currency sign."""
    from spacy.tokens import Span

    text = "Pernod eyes Domecq\n\nShares rose in Paris , £ 5bn"
    doc = tagger.nlp.make_doc(text)
    words = [t.text for t in doc]
    start = words.index("Domecq")
    doc.ents = [Span(doc, start, start + 3, "ORG"), Span(doc, words.index("£"), words.index("£") + 1, "MISC")]
    doc = tagger.nlp.get_pipe("streams_kb")(doc)
    assert [(e.text, e.label_) for e in doc.ents if e.label_ in {"ORG", "MISC"}] == [("Domecq", "ORG")]


def test_one_label_per_name_the_kb_does_not_know(tagger) -> None:
    from spacy.tokens import Span

    from streams.stages.tag import canonical_entities

    text = "Pernod rose . Pernod said Pernod would bid . The ECB held rates ."
    doc = tagger.nlp(text)
    at = [t.i for t in doc if t.text == "Pernod"]
    doc.ents = [*(Span(doc, i, i + 1, label) for i, label in zip(at, ["ORG", "PER", "ORG"], strict=True)),
                *(e for e in doc.ents if e.kb_id_)]
    found = {(e.name, e.label, e.count) for e in canonical_entities(doc, tagger.kb, text)}
    assert ("Pernod", "ORG", 3) in found and ("European Central Bank", "CENTRAL_BANK", 1) in found
    assert len([e for e in found if e[0] == "Pernod"]) == 1


def test_a_bare_surname_no_layer_tagged_counts_for_the_full_name(tagger) -> None:
    t = tag(tagger, "Finance Minister Ruth Okafor presented the budget. The opposition attacked Okafor on Tuesday.")
    assert ents(t)["Ruth Okafor"] == ("PERSON", None, 2)
