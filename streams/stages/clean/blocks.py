"""Blocks of a page and the rules that know boilerplate by its shape, repetition and position.

A page's text is cut into blocks (paragraphs or lines); the learnt detector
(:mod:`streams.stages.clean.detector`) finds the article's blocks, and within them these rules
judge each block on general signals rather than on any one site's sentences:

* **repetition** - a block equal to the title, a teaser whose text (ellipsis removed) appears in
  the article again, a paragraph seen before;
* **shape** - bylines, share rows, breadcrumbs, captions, tag lines, copyright lines, calls to
  action that address the reader, disclaimers, cookie notices, advertisement slugs;
* **position** - the page's tail after the article (:func:`cut_related`): a comments section, the
  headlines under a "Related"/"More from" heading, a run of other stories' headlines that ends the
  page, an author's note; short non-prose blocks before the title, and widget-like runs squeezed
  between the last paragraph and boilerplate, belong to the page, not the article.

Short real paragraphs inside the article (sub-headings, quotes, lists of fixtures or figures) stay
because nothing but a positional or shape signal ever removes a block.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from spacy.lang.en.stop_words import STOP_WORDS

WORD = re.compile(r"\w+")
# a run of two or more spaces, or any other kind of space (a lone plain space matches nothing: fast)
SPACES = re.compile(r"[ \t\u00a0\u2000-\u200b\u202f\u205f\u3000]{2,}|[\t\u00a0\u2000-\u200b\u202f\u205f\u3000]")
ELLIPSIS = re.compile(r"\s*(?:\[\s*(?:…|\.\.\.)\s*\]|…|\.\.\.)\s*")
ODD_SPACE = re.compile(r"[\t\u00a0\u2000-\u200b\u202f\u205f\u3000]")
BLANK_LINES = re.compile(r"\n{3,}")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200c-\u200f\u2028\u2029\u2060\ufeff]")
SENTENCE_ENDS = frozenset(".!?:;\"'”’)]")

_TAIL = (
    r"related(?: articles?| stories| news| posts| content| coverage| reading| links)?"
    r"|recommended(?: for you| stories| articles| reading| videos)?|recommend(?:ations)?"
    r"|you (?:may|might|could) (?:also )?(?:like|enjoy|be interested in)|also (?:read|see)|see also"
    r"|more (?:from|on|in|about) [\w .'&-]{1,40}|more (?:stories|news|articles|headlines|like this|to read)"
    r"|most (?:read|popular|viewed|shared|watched)|trending(?: now| stories| news)?|popular(?: now| stories)?"
    r"|further reading|read next|up next|what to read next|top stories|latest(?: news| stories| articles)?"
    r"|don'?t miss|editor'?s picks|sponsored (?:stories|links|content)|from (?:around|across) the web"
    r"|comments?|leave a (?:comment|reply)|join the (?:conversation|discussion)"
)
TAIL_MARKER = re.compile(rf"^(?:{_TAIL})\s*[:.!]?$", re.I)
#: a comments section's heading ("Comment" alone is as often a sub-heading or an opinion label)
COMMENTS_MARKER = re.compile(r"^(?:\d+ )?(?:comments|leave a (?:comment|reply)|join the (?:conversation|discussion))\b",
                             re.I)
#: a comment thread's count line: "53 comments… read them below or add one", "1 Comment",
#: "12 Responses to “Title”", "5 thoughts on “Title”"
COMMENT_COUNT = re.compile(r"^[{(\[]?\s*(?:\d+|one) (?:comments?|responses?|replies|thoughts? on)\b", re.I)
#: a month's name or its abbreviation, lower case (match with re.I)
MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*"
#: a commenter's line, the first of one comment: a name with a date, a time or "says:"
COMMENTER = re.compile(
    r"\b\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b|\b\d{1,2}:\d{2}\s*(?:[ap]\.?m\b|$)|\bat \d{1,2}:\d{2}\b"
    r"|\b\d+ (?:minutes?|hours?|days?|weeks?|months?|years?) ago\b"
    rf"|\b{MONTH}\.? \d{{1,2}}(?:st|nd|rd|th)?,? (?:19|20)\d\d\b"
    r"|\b(?:says|said|wrote|writes)\s*:?\s*$", re.I)
#: what a byline under a comment-count link, or a profile's counts, hold and a commenter's line does not
NOT_A_THREAD = re.compile(r"\b(?:by|written|posted|published|updated|views?|page \d)\b", re.I)
LIST_MARKS = "-•*·▪►–"
LIST_ITEM = re.compile(rf"^[{LIST_MARKS}]\s+")
# a sentence boundary inside a block: a paragraph, not a one-line summary
INNER_SENTENCE = re.compile(r"[.!?][\"'”’)]?\s+[A-Z]")
HEADLINE_END = frozenset(".!:;,\"'”’)")

#: Block shapes that are page furniture wherever they stand, matched at the start of a block:
#: (kind, pattern, case-insensitive).
_SHAPES: list[tuple[str, str, bool]] = [
    ("byline", r"(?i:by|words by|written by|reporting by|story by)\s+[A-Z][\w.'’-]*"
               r"(?:\s+(?:[A-Z][\w.'’-]*|and|&|de|van|von|al)){0,5}\s*(?:$|[,|•·–—-]\s*.{0,80}$)", False),
    ("byline", r"(?:(?:updated|published|posted|last updated)\b.{0,60}|\d{1,3} min(?:ute)?s? read)$", True),
    ("caption", r"[(\[]?\s*(?:photo|image|picture|pic|credit|caption|illustration|video|file photo|photograph)s?"
                r"\s*(?:credit)?\s*[:)|\-–—].{0,150}$", True),
    ("caption", r"[(\[][^()\[\]]{0,80}(?:getty images|reuters|afp|ap photo|shutterstock|epa)[)\]]$", True),
    ("caption", r"[^()\[\]/]{0,60}/\s*(?:getty images|afp|reuters|ap|epa|shutterstock|bloomberg|the [\w -]{1,30})"
                r"(?: via getty images)?\)?$", True),  # a photo credit: "Jane Doe/Getty Images"
    ("advertisement", r"(?:advertisement|advertising|ad|sponsored(?: content)?|promoted"
                      r"|story continues below(?: advertisement)?|continue reading(?: below)?"
                      r"|scroll to continue(?: with content)?|article continues below)\s*[:.]?$", True),
    ("read_more", r"(?:read more|read also|also read|see also|related|more|watch|listen|recommended|don't miss)"
                  r"\s*[:>»|–—-]\s*\S.{0,200}$", True),
    ("tags", r"(?:tags?|topics?|filed under|categories|category|keywords)\s*[:|]\s*.{0,600}$", True),
    ("call_to_action", r"(?:sign up|subscribe|follow us|download (?:our|the)|register (?:now|today|here)|"
                       r"join (?:us|our))\b.{0,150}$", True),
    ("copyright", r"(?:©|\(c\)|copyright\b).{0,200}$", True),
    ("disclaimer", r"(?:disclaimer|disclosure|legal notice|risk warning)\s*[:.-]", True),
]
SHAPES: list[tuple[str, re.Pattern[str]]] = [(kind, re.compile(pattern, re.I if folded else 0))
                                              for kind, pattern, folded in _SHAPES]
# all of them in one pass (used with .match), so a block that is none of them costs one call
ANY_SHAPE = re.compile("|".join(f"(?i:{pattern})" if folded else f"(?:{pattern})" for _, pattern, folded in _SHAPES))

#: a link to another story's page at the end of its teaser ("... Read more »")
READ_MORE_END = re.compile(r"\b(?:read more|continue reading|full story)\s*(?:\.\.\.|…|»|>|→)?$", re.I)

#: Phrases that mark a short block as furniture wherever they occur in it (searched, not matched).
PHRASES: list[tuple[str, int, re.Pattern[str]]] = [
    ("copyright", 40, re.compile(r"\ball rights reserved\b", re.I)),
    ("cookie", 60, re.compile(r"\b(?:we use cookies|cookie (?:policy|settings|preferences)|accept (?:all )?cookies)\b",
                              re.I)),
    ("disclaimer", 120, re.compile(
        r"\b(?:for (?:general )?informational purposes only|(?:is|are|does) not (?:constitute )?"
        r"(?:financial|investment) advice|do(?:es)? not necessarily reflect the views?"
        r"|infringes? (?:on )?(?:third[- ]party|your|the) (?:rights|copyright))\b", re.I)),
]

#: words one of the phrases needs: a block without any skips the phrase searches
PHRASE_WORDS = frozenset({"reserved", "cookies", "cookie", "informational", "advice", "reflect", "infringe",
                          "infringes"})

CTA_WORDS = re.compile(
    r"\b(?:newsletters?|subscribe|subscription|sign(?:ing)? up|signup|inbox|click here|tap here|follow us|"
    r"download (?:our|the) app|join (?:us|our)|register (?:now|today|here)|free trial|premium members?|"
    r"unlock|don'?t miss out|stay (?:informed|updated|ahead|there))\b", re.I)
READER = frozenset({"you", "your", "yours", "our", "us"})  # "you're" is two words: you, re
#: a call to action is short: a longer paragraph that tells the reader to "click here", "stay
#: updated" or "join us" is the article's own (held out, 40 words cost 7 pages against trafilatura
#: alone on the HTML path)
CTA_WORDS_MAX = 25
SHARE_WORDS = {"share", "shares", "facebook", "twitter", "x", "linkedin", "email", "e", "mail", "whatsapp",
               "print", "copy", "link", "tweet", "pinterest", "reddit", "telegram", "on", "this", "article",
               "story", "via", "messenger", "comment", "comments", "save", "flipboard"}
SHARE_CUE = {"share", "facebook", "twitter", "linkedin", "whatsapp", "tweet", "pinterest", "telegram"}
PRICED = re.compile(r"[$€£¥₿%]|\b[A-Z]{2,6}\b|\([A-Z]{2,6}\)|(?i:\b(?:logo|icon)$)")
CRUMB_SEP = re.compile(r"\s*(?:›|»|>|/|\||→|::)\s*")
CRUMB_CHARS = re.compile(r"[›»>/|→]|::")


@dataclass(slots=True)
class Block:
    """One paragraph or line of a page, with what every later judgement reads of it."""

    text: str
    tokens: list[str]  # its \w+ tokens as written (the detector reads their case)
    first: bool = True  # first line of its paragraph (a blank line or the page start above it)
    kind: str | None = None  # why it was removed; None = kept
    words: list[str] = field(init=False)  # the tokens lower-cased
    n: int = 0
    key: str = ""
    stops: int = 0
    prose: bool = False
    shape: str | None = None  # the boilerplate kind its shape says, whatever its position

    def __post_init__(self) -> None:
        self.key = " ".join(self.tokens).lower()  # in C, not token by token (the same words)
        self.words = self.key.split()
        self.n = len(self.words)
        self.stops = sum(map(STOP_WORDS.__contains__, self.words))
        # sentence-like: long enough, ends like a sentence, uses function words
        self.prose = self.n >= 8 and self.text[-1:] in SENTENCE_ENDS and self.stops >= 0.2 * self.n
        self.shape = shape_of(self)


@dataclass(slots=True)
class Cleaned:
    title: str
    paragraphs: list[str]
    removed: Counter[str]
    body_words: list[str] = field(default_factory=list)
    no_article: bool = False  # the page holds no article at all (the detector's judgement)

    @property
    def body(self) -> str:
        return "\n\n".join(self.paragraphs)


def normalise(text: str) -> str:
    """NFC, one kind of space, no control characters, stripped lines, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL.sub("", text)
    if "  " in text or ODD_SPACE.search(text):  # the substitution scans slowly; most texts need none
        text = SPACES.sub(" ", text)
    text = "\n".join([line.strip() for line in text.split("\n")])
    return (BLANK_LINES.sub("\n\n", text) if "\n\n\n" in text else text).strip()


def words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def trigrams(words: list[str]) -> Iterator[tuple[str, str, str]]:
    return zip(words, words[1:], words[2:], strict=False)


def key(text: str) -> str:
    """Comparison form of a text: its lower-cased words, single-spaced."""
    return " ".join(words(text))


def content_hash(title: str, body: str | list[str]) -> str:
    """sha256 of the normalised body text: equal for the same text under another id, url or title.

    ``body`` may be given as its words already (the clean stage has them)."""
    normalised = " ".join(body) if isinstance(body, list) else key(body)
    return hashlib.sha256(normalised.encode()).hexdigest()


def split_blocks(text: str) -> list[Block]:
    """Paragraphs split on blank lines; inside a paragraph each line is a block unless hard-wrapped."""
    blocks: list[Block] = []
    for para in text.split("\n\n"):
        lines = [line for line in para.split("\n") if line]
        merged: list[str] = []
        for line in lines:
            prev = merged[-1] if merged else ""
            if prev and prev[-1] not in SENTENCE_ENDS and line[:1].islower() and len(prev) > 40:
                merged[-1] = f"{prev} {line}"  # a hard-wrapped sentence continues
            else:
                merged.append(line)
        blocks.extend(Block(line, WORD.findall(line), first=j == 0) for j, line in enumerate(merged))
    return blocks


def shape_of(block: Block) -> str | None:
    """The boilerplate kind a block's shape says it is, or None."""
    text = block.text
    if block.n <= 8 and TAIL_MARKER.match(text):
        return "tail"
    if ANY_SHAPE.match(text):
        for kind, pattern in SHAPES:
            if pattern.match(text) and (kind != "call_to_action" or block.n <= CTA_WORDS_MAX):
                return kind
    if block.n <= 60 and READ_MORE_END.search(text[-30:]):
        return "read_more"
    if block.n <= 120 and not PHRASE_WORDS.isdisjoint(block.words):
        for kind, max_words, pattern in PHRASES:
            if block.n <= max_words and pattern.search(text):
                return kind
    if block.n and block.n <= CTA_WORDS_MAX and not READER.isdisjoint(block.words) and CTA_WORDS.search(text):
        return "call_to_action"
    if (block.n and block.n <= 16 and SHARE_CUE & set(block.words)
            and sum(w in SHARE_WORDS for w in block.words) / block.n >= 0.6):
        return "share"
    if block.n > 40 or not CRUMB_CHARS.search(text) or LIST_ITEM.match(text):  # a list's item, not a trail
        return None
    parts = [p for p in CRUMB_SEP.split(text) if p]
    if (len(parts) >= 3 and len(CRUMB_SEP.findall(text)) >= 2 and all(len(p.split()) <= 4 for p in parts)
            and not any(ch.isdigit() for ch in text)):
        return "breadcrumb"
    return None


def is_sentence(block: Block) -> bool:
    """Eight words or more ending like a sentence (looser than Block.prose, which also wants the
    function words of running text: a lead full of names and figures is a sentence too)."""
    return block.n >= 8 and block.text[-1:] in ".!?\"'”’"


def is_widget(block: Block) -> bool:
    """A price ticker, logo alt text or chart label: a handful of tokens, no sentence."""
    return block.n <= 6 and not block.text.endswith(".") and len(block.text) <= 60


def looks_priced(block: Block) -> bool:
    """A widget block with a price, a percentage or a ticker in it, or a logo's alt text ("Toncoin
    Logo": the detector may keep it and drop the prices beside it)."""
    return bool(PRICED.search(block.text))


def clean_blocks(blocks: list[Block], title: str) -> None:
    """Mark every boilerplate block with the kind that removes it (in place)."""
    title_key = key(title)
    all_keys = [b.key for b in blocks]

    # 1. shapes, then the page's tail: comments, related headlines
    for block in blocks:
        if block.shape and block.shape != "tail":
            block.kind = block.shape
    cut_related(blocks)

    # 2. repetition: the title again, teasers of the text, paragraphs kept before
    seen: set[str] = set()
    in_body = False
    for i, block in enumerate(blocks):
        if block.kind:
            continue
        k = all_keys[i]
        if title_key and k == title_key:
            block.kind = "title"
        elif _is_teaser(block, i, blocks, all_keys, in_body):
            block.kind = "teaser"
        elif k in seen and block.prose:
            block.kind = "repeat"
        if block.kind is None:  # a copy stays once: the first, unless it went as the second's teaser
            seen.add(k)
        in_body = in_body or (block.kind is None and block.prose)

    # 3. position: page header before the title line, widget runs that end the article - before
    # trailing boilerplate, or where what the detector kept ends (a price box under the article)
    title_at = next((i for i, b in enumerate(blocks) if b.kind == "title"), None)
    if title_at is not None and title_at <= 6:
        head = blocks[:title_at]
        if all(b.kind or b.n <= 12 for b in head):
            for b in head:
                b.kind = b.kind or "header"
    kept = [i for i, b in enumerate(blocks) if b.kind is None]
    last_prose = max((i for i in kept if blocks[i].prose), default=None)
    if last_prose is not None:
        run: list[Block] = []
        for block in blocks[last_prose + 1:]:
            if block.kind is None and is_widget(block):
                run.append(block)
            elif block.kind is None:
                run = []
            elif block.kind in {"disclaimer", "copyright", "call_to_action", "share"}:
                _priced_run(run)
                run = []
        _priced_run(run)


def _priced_run(run: list[Block]) -> None:
    """A run of widget lines goes when a third of them carry a price, a percentage or a ticker."""
    if run and sum(map(looks_priced, run)) * 3 >= len(run):
        for b in run:
            b.kind = "widget"


def headline_like(block: Block) -> bool:
    """A line shaped like another story's headline: 3 to 18 words, capitalised, few of them numbers,
    no closing punctuation (a list marker in front allowed)."""
    if not 3 <= block.n <= 18:
        return False
    text = LIST_ITEM.sub("", block.text) if block.text[:1] in LIST_MARKS else block.text
    return (text[:1].isupper() and text[-1:] not in HEADLINE_END
            and sum(map(str.isdigit, block.words)) * 5 <= block.n)  # not a score or a table row


def _filler(block: Block) -> bool:
    """What sits between and after related headlines: a date, a source, a time, a section name, and
    page furniture known by its shape (a copyright line, share buttons)."""
    return (block.n <= 4 and not block.text.endswith(".")) or block.shape not in (None, "tail")


def _heading(block: Block) -> bool:
    """A "Related"-style marker, or a short line that introduces a list without introducing it as part
    of a sentence (that would end with a colon)."""
    return block.shape == "tail" or (1 <= block.n <= 5 and block.text[-1:] not in HEADLINE_END and
                                     block.text[-1:] not in "?")


def _run_lines(run: list[Block], heads: list[bool], summaries: bool = True) -> list[bool]:
    """Per line of ``run``, whether it may belong to a run of other stories' headlines: a headline
    (``heads``), a filler, or (with ``summaries``) a one-sentence summary right after a headline."""
    return [head or _filler(b) or (summaries and i > 0 and heads[i - 1] and b.n <= 40
                                   and not INNER_SENTENCE.search(b.text))
            for i, (b, head) in enumerate(zip(run, heads, strict=True))]


#: An author's note at the end of an article: "Jane Doe is a reporter for ...", "About the author"
BIO = re.compile(r"(?:about the author\b|[A-Z][\w.'’-]+(?: [A-Z][\w.'’-]+){0,3} (?:is|was|has been) (?:a|an|the)\b"
                 r"[^.]{0,100}?\b(?:writer|editor|reporter|correspondent|columnist|author|contributor|journalist"
                 r"|blogger|professor|analyst|producer|host|founder)s?\b)")


#: a run of related headlines after the article needs this many lines under a heading, and
#: UNHEADED_RUN lines that share few words with the article when nothing introduces it
HEADED_RUN = 3
UNHEADED_RUN = 5


def _thread_starts(kept: list[Block], k: int, sure_kept: Sequence[bool]) -> bool:
    """Whether a comment thread starts at ``kept[k]``: a comments heading with no prose the detector
    is sure of below it, or a comments heading or a comment count with a commenter's line (a name
    with a date or "says:") among the next three lines, whatever the detector made of the comments.
    A comment-count link under an article's headline or lead has a byline or the article's prose
    below it, not a commenter."""
    block = kept[k]
    heading = block.shape == "tail" and COMMENTS_MARKER.match(block.text) is not None
    if heading and not any(sure_kept[k + 1:]):
        return True
    if block.n > 15 or not (heading or COMMENT_COUNT.match(block.text)) or NOT_A_THREAD.search(block.text):
        return False
    return any(b.n <= 12 and COMMENTER.search(b.text) is not None and not NOT_A_THREAD.search(b.text)
               for b in kept[k + 1:k + 4])


def cut_related(blocks: list[Block], sure: Sequence[bool] = ()) -> None:
    """Mark the page's tail after the article (in place): the author's note at the very end; a
    comment thread (a comment count or a comments heading with a commenter's line under it) and all
    that follows, whatever the detector made of the comments' prose; a comments heading and all that
    follows, unless prose ``sure`` (per block: the detector is sure it is the article) follows it - a
    comment-count link above the rest of the article;
    a "Related"/"More from" heading and the headlines under it, up to the next paragraph of the
    article; and a run of headline-like lines that reaches the end of the page - other stories'
    headlines, perhaps with a one-line summary each - under a short heading, or, with no heading, when
    the lines share few words with the article. An article's own list (introduced by a sentence
    ending in a colon, or about the article's subject) stays, whatever the detector scored."""
    kept = [b for b in blocks if b.kind is None]
    sure_kept = [s for b, s in zip(blocks, sure, strict=True) if b.kind is None] if sure else []
    while len(kept) > 1 and BIO.match(kept[-1].text) and kept[-1].n <= 120:  # the author's note at the end
        kept.pop().kind = "bio"
    like = [headline_like(b) for b in kept]
    fits = _run_lines(kept, like)
    to_end = [True] * (len(kept) + 1)  # kept[k:] is a run of headlines, fillers and summaries
    heads = [0] * (len(kept) + 1)  # the headline-like lines in kept[k:]
    for k in range(len(kept) - 1, -1, -1):
        to_end[k] = fits[k] and to_end[k + 1]
        heads[k] = heads[k + 1] + like[k]
    seen_prose = False  # the article's first sentence is behind
    for k, block in enumerate(kept):
        if seen_prose and _thread_starts(kept, k, sure_kept):
            for rest in kept[k:]:
                rest.kind = "comments"
            return
        if seen_prose and block.shape == "tail" and block.key != "comment":
            # to the page's end, other stories' summaries go too; inside the article a sentence
            # after the box is the article going on
            box = _run_lines(kept[k + 1:], like[k + 1:], summaries=to_end[k + 1])
            size = next((i for i, fit in enumerate(box) if not fit), len(box))
            for b in kept[k:k + 1 + size]:
                b.kind = "related"
            continue
        if seen_prose and to_end[k] and heads[k] >= HEADED_RUN and like[k]:
            above = kept[k - 1]
            headed = _heading(above)
            if not headed and heads[k] >= UNHEADED_RUN and not above.text.endswith(":"):
                article = {w for b in kept[:k] if b.kind is None and b.prose for w in b.words if len(w) > 3}
                mine = [b for b, head in zip(kept[k:], like[k:], strict=True) if head]
                headed = sum(len(article.intersection(b.words)) / b.n for b in mine) / len(mine) < 0.3
            if headed:
                for b in kept[k:]:
                    b.kind = "related"
                if _heading(above):
                    above.kind = "related"
                return
        seen_prose = seen_prose or (block.kind is None and block.prose)


def _is_teaser(block: Block, i: int, blocks: list[Block], all_keys: list[str], in_body: bool) -> bool:
    """A lead-in repeated from the article: cut with an ellipsis, or a copy of a later paragraph.

    Either the text before its ellipsis appears in another block (and what follows the ellipsis,
    the next line run into it, is short or appears too), or, above the article body, it starts
    like a later paragraph and is no more than two copies of it long.
    """
    if ("…" in block.text or "..." in block.text) and ELLIPSIS.search(block.text):
        pieces = [p for p in (key(p) for p in ELLIPSIS.split(block.text)) if p.count(" ") >= 3]
        others = " \n ".join(all_keys[:i] + all_keys[i + 1:])
        # the lead cut off, perhaps run into the next line (a headline, "Read more"): once is enough
        if pieces and pieces[0] in others and all(p in others or p.count(" ") < 20 for p in pieces[1:]):
            return True
    if in_body or block.n < 8:
        return False
    head = " ".join(block.words[:8])
    return any(k.startswith(head) and len(k) * 2.2 >= len(all_keys[i]) and not ELLIPSIS.search(later.text)
               for k, later in zip(all_keys[i + 1:], blocks[i + 1:], strict=True))  # not a cut copy of itself
