"""Dedup stage: exact and near-duplicate detection across the whole stream.

*Exact* duplicates share the content hash of their normalised body (a resent message, or the same
text under another id or url). *Near* duplicates are the same story with other wrappers, headline
prefixes, datelines or small edits; the reference definition is Jaccard similarity of lower-cased
word 5-shingles of title + body >= ``threshold`` (0.5 by default).

Near duplicates are found with MinHash (datasketch) and LSH banding: each article's signature is cut
into ``b`` bands of ``r`` rows; articles sharing a band are candidates, and a candidate counts only
after verification: the signatures' estimated Jaccard reaches the threshold, or the smaller text is
at least ``containment`` (0.9) contained in the larger - the syndicated copy that lost its last
paragraph, whose Jaccard can drop below 0.5 while every sentence it keeps is the original's. LSH
is tuned for a lower threshold than the verification so that such pairs become candidates.

State lives in three mappings - in the worker they are Faust tables backed by changelog topics, in
``streams eval`` plain dicts - so a restarted worker recovers it:

* ``hashes``: content hash -> first id;
* ``bands``: band key -> id of the first article that had it;
* ``signatures``: id -> packed record (time seen, root id, signature), base64 text.

Entries older than the retention window are removed by :meth:`Deduplicator.expire`.
"""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import MutableMapping
from dataclasses import dataclass

import numpy as np
from datasketch import MinHash, MinHashLSH

from streams.events import CleanArticle, DuplicateArticle
from streams.stages.clean import words

SHINGLE = 5
SCHEME = "affine32"  # datasketch 2 permutation scheme: 32-bit hash values
_HEAD = struct.Struct("<dIHH")  # seen-at (unix s), shingle count, length of the root id, of the raw ref


def shingles(title: str, body: str, k: int = SHINGLE) -> list[bytes]:
    """Lower-cased word k-shingles of title + body, the reference definition's unit."""
    w = words(f"{title} {body}")
    if len(w) < k:
        return [" ".join(w).encode()]
    return [" ".join(w[i : i + k]).encode() for i in range(len(w) - k + 1)]


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """What dedup decided for one article."""

    kind: str | None  # None (first sighting), "exact" or "near"
    duplicate_of: str | None = None
    similarity: float = 1.0

    @property
    def is_duplicate(self) -> bool:
        return self.kind is not None


class Deduplicator:
    """Decides, article by article in stream order, whether each is the first sighting of its story."""

    def __init__(
        self,
        hashes: MutableMapping[str, str],
        bands: MutableMapping[str, str],
        signatures: MutableMapping[str, str],
        threshold: float = 0.5,
        num_perm: int = 128,
        retention_seconds: float = 7 * 86400,
        containment: float = 0.9,
    ) -> None:
        self.hashes, self.bands, self.signatures = hashes, bands, signatures
        self.threshold = threshold
        self.containment = containment
        self.num_perm = num_perm
        self.retention_seconds = retention_seconds
        # Candidates are generated well below the verification threshold, so that borderline pairs
        # and trimmed copies (Jaccard down to ~0.35 when one copy lost a long last paragraph) are seen.
        lsh = MinHashLSH(threshold=max(0.05, threshold * 0.6), num_perm=num_perm)
        self.b, self.r = lsh.b, lsh.r
        self._seed_hash = MinHash(num_perm=num_perm, hashfunc=zlib.crc32, scheme=SCHEME)  # reused

    @classmethod
    def from_settings(cls, settings, hashes: MutableMapping[str, str], bands: MutableMapping[str, str],
                      signatures: MutableMapping[str, str]) -> Deduplicator:
        """The configured deduplicator (``STREAMS_DEDUP_*``) over the given state mappings."""
        return cls(hashes, bands, signatures, threshold=settings.dedup_threshold, num_perm=settings.dedup_num_perm,
                   retention_seconds=settings.dedup_retention_days * 86400, containment=settings.dedup_containment)

    def signature(self, title: str, body: str) -> tuple[np.ndarray, int]:
        """The MinHash signature (uint32 per permutation) of an article's shingles, and their count."""
        m = MinHash(num_perm=self.num_perm, hashfunc=zlib.crc32,
                    permutations=self._seed_hash.permutations, scheme=SCHEME)
        grams = set(shingles(title, body))
        m.update_batch(list(grams))
        return m.hashvalues.astype(np.uint32), len(grams)

    def band_keys(self, sig: np.ndarray) -> list[str]:
        return [f"{i}:{zlib.crc32(sig[i * self.r:(i + 1) * self.r].tobytes()):08x}" for i in range(self.b)]

    def _record(self, seen_at: float, size: int, root: str, ref: str, sig: np.ndarray) -> str:
        """Packed (seen-at, shingle count, root id, raw ref, signature), base64 for any JSON changelog."""
        root_b, ref_b = root.encode(), ref.encode()
        packed = _HEAD.pack(seen_at, size, len(root_b), len(ref_b)) + root_b + ref_b + sig.tobytes()
        return base64.b64encode(packed).decode("ascii")

    @staticmethod
    def _unpack(record: str) -> tuple[float, int, str, str, np.ndarray]:
        raw = base64.b64decode(record)
        seen_at, size, n, m = _HEAD.unpack_from(raw)
        root = raw[_HEAD.size : _HEAD.size + n].decode()
        ref = raw[_HEAD.size + n : _HEAD.size + n + m].decode()
        return seen_at, size, root, ref, np.frombuffer(raw[_HEAD.size + n + m :], dtype=np.uint32)

    def similar(self, jaccard: float, size_a: int, size_b: int) -> bool:
        """The same story: resemblance reaches the threshold, or the smaller text is (almost)
        contained in the larger - a copy with its last paragraph trimmed, say. Containment is
        estimated from the Jaccard estimate and the two shingle counts."""
        if jaccard >= self.threshold:
            return True
        contained = jaccard * (size_a + size_b) / ((1 + jaccard) * max(1, min(size_a, size_b)))
        return jaccard >= self.threshold * 0.6 and contained >= self.containment

    def check(self, article: CleanArticle, now: float | None = None) -> Verdict:
        """Classify ``article`` and remember it, so later copies find it."""
        now = article.ingested_at.timestamp() if now is None else now
        mine = self.signatures.get(article.id)
        if mine is not None and article.raw_ref:
            _, _, root, ref, _ = self._unpack(mine)
            if ref == article.raw_ref:  # the same input again (a replay after a crash): the same verdict
                return Verdict(None) if root == article.id else Verdict("near", root, 1.0)
        first = self.hashes.get(article.content_hash)
        if first is not None:
            return Verdict("exact", first, 1.0)
        sig, size = self.signature(article.title, article.body)
        keys = self.band_keys(sig)
        best: tuple[float, str] | None = None
        for candidate in {self.bands[k] for k in keys if k in self.bands}:
            record = self.signatures.get(candidate)
            if record is None:
                continue
            _, other_size, root, _, other = self._unpack(record)
            similarity = float(np.count_nonzero(sig == other)) / self.num_perm
            if self.similar(similarity, size, other_size) and (best is None or similarity > best[0]):
                best = (similarity, root)
        root = best[1] if best else article.id
        self.hashes[article.content_hash] = root
        self.signatures[article.id] = self._record(now, size, root, article.raw_ref, sig)
        for k in keys:
            if k not in self.bands:
                self.bands[k] = article.id
        if best:
            return Verdict("near", best[1], round(best[0], 4))
        return Verdict(None)

    def expire(self, now: float) -> int:
        """Forget articles seen before the retention window; returns how many were dropped."""
        cutoff = now - self.retention_seconds
        old = {aid for aid, rec in list(self.signatures.items()) if self._unpack(rec)[0] < cutoff}
        for aid in old:
            del self.signatures[aid]
        for k, aid in list(self.bands.items()):
            if aid in old or aid not in self.signatures:
                del self.bands[k]
        for h, aid in list(self.hashes.items()):
            if aid not in self.signatures:
                del self.hashes[h]
        return len(old)

    def state_bytes(self) -> int:
        """Bytes of keys and values held, as a changelog would carry them."""
        return (sum(len(k) + len(v) for k, v in self.hashes.items())
                + sum(len(k) + len(v) for k, v in self.bands.items())
                + sum(len(k) + len(v) for k, v in self.signatures.items()))


def mark_duplicate(article: CleanArticle, verdict: Verdict) -> DuplicateArticle:
    """The ``articles.duplicates`` event for a later copy."""
    assert verdict.kind is not None and verdict.duplicate_of is not None
    return DuplicateArticle(**article.model_dump(), duplicate_of=verdict.duplicate_of,
                            duplicate_kind=verdict.kind, similarity=verdict.similarity)
