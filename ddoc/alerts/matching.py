"""Alert → runbook matching: explicit triggers first, then hybrid retrieval.

Why this file is long: one `Matcher` runs the explicit triggers and both retrievals and fuses
them; the parts share the session, the thresholds and the evidence behind each reason.

1. Explicit: a learned trigger for the alert's fingerprint (a responder picked that runbook for
   an alert like this one, ddoc/alerts/learned.py) attaches its runbook, whatever else matches. Else
   the runbooks the alert's `runbook_url` shows (ddoc/alerts/runbook_urls.py), and the runbooks that
   name the alert (`alerts:`) or whose label selector (`labels:`) the alert's labels satisfy.
   One such runbook is a certain match; a URL that picks one of several declaring runbooks
   decides. Several are offered as suggestions unless the alert's service singles one out, and
   so are runbooks when the URL and the declarations disagree: attaching one of them silently
   could be the wrong one (docs/decisions/0007).
2. Statistical: PostgreSQL full-text search and pgvector cosine similarity over sentence
   embeddings of the alert's text without its variable parts (ddoc/alerts/search_text.py). The
   confidence
   of a candidate is its cosine similarity plus bounded bonuses for full-text agreement and
   service, less up to `TITLE_PENALTY` for the (rarity-weighted) share of its title's words the
   alert does not mention. The top candidate is attached only when it clears `attach`, leads
   the next one by `margin`, full-text search ranks it first, and the alert mentions every
   distinctive word of its title ("server" for an alert about a "client" certificate keeps it
   a suggestion). Otherwise candidates above `suggest` are offered, and below that the alert is
   recorded as having no runbook (a coverage gap). With a `Confirmer` (Claude,
   ddoc/alerts/match_confirm.py), that decision is then confirmed or changed among its candidates.

Thresholds were measured on the public corpus (`bench/match_renderings.py`,
`bench/match_sweep.py`, docs/BENCHMARKS.md).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text
from sqlmodel import Session

from ddoc.alerts import fingerprints, learned, runbook_urls, search_text
from ddoc.alerts.sources import NormalizedAlert
from ddoc.runbooks import search

if TYPE_CHECKING:
    from ddoc.runbooks.embedding import Embedder


class Confirmer(Protocol):
    """Asked about a statistical decision with candidates: returns it, or another decision
    that attaches one of its candidates or none (ddoc/alerts/match_confirm.py)."""

    def confirm(
        self, session: Session, tenant_id: str, alert: NormalizedAlert, result: MatchResult
    ) -> MatchResult: ...


_SEARCH_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="ddoc-match")
_RRF_K = 60
_COMMON_SHARE = 0.2
_COMMON_MIN_RUNBOOKS = 200
_COMMON_TTL_SECONDS = 300.0
_RETRIEVE = 20
FTS_TOP_BONUS = 0.08  # the full-text search ranks the candidate first
FTS_HIT_BONUS = 0.04  # the full-text search finds it at all
SERVICE_BONUS = 0.05  # the alert's service is one the runbook declares
SERVICE_TITLE_BONUS = 0.03  # the runbook's title names the alert's service (declares none)
# Confidence lost when the alert mentions none of the words of the runbook's title (weighted by
# how rare each word is among the tenant's titles); in proportion when it mentions some.
TITLE_PENALTY = 0.10
# A word found in more than this share of the tenant's runbook titles (and in more than
# _GENERIC_MIN of them) is generic ("kube", "error"): the alert need not repeat it.
_GENERIC_SHARE = 1 / 10
_GENERIC_MIN = 2
_TITLES_TTL_SECONDS = 300.0
_EXACT_ONLY = search.MEANINGFUL_STOP_WORDS | {"not"}


@dataclass(frozen=True)
class Thresholds:
    """Measured on the corpus (docs/BENCHMARKS.md): attaching needs a high confidence, a clear
    lead over the next candidate, full-text search agreeing on the same runbook, and an alert
    that mentions every distinctive word of the runbook's title. The rest is offered as
    suggestions, keeping wrong attachments near zero."""

    attach: float = 0.65
    suggest: float = 0.45
    margin: float = 0.10
    require_fulltext_agreement: bool = True
    require_title_words: bool = True


def thresholds_from(
    attach: float | None = None, suggest: float | None = None, margin: float | None = None
) -> Thresholds:
    """The defaults, with any configured value (DDOC_MATCH_ATTACH/SUGGEST/MARGIN) instead."""
    defaults = Thresholds()
    return Thresholds(
        attach=defaults.attach if attach is None else attach,
        suggest=defaults.suggest if suggest is None else suggest,
        margin=defaults.margin if margin is None else margin,
    )


@dataclass
class Candidate:
    runbook_id: str
    title: str
    source_path: str | None
    score: float
    reasons: list[str] = field(default_factory=list)
    method: str = "hybrid"  # explicit | hybrid
    alert_names: list[str] = field(default_factory=list)  # the alerts the runbook declares
    learned_trigger_id: str | None = None  # the learned trigger that matched (explicit)


@dataclass
class MatchResult:
    candidates: list[Candidate]
    attached: Candidate | None

    @property
    def status(self) -> str:
        if self.attached is not None:
            return "attached"
        return "suggested" if self.candidates else "unmatched"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "candidates": [asdict(c) for c in self.candidates],
            "attached": asdict(self.attached) if self.attached else None,
        }


@dataclass
class Ranked:
    """A retrieved candidate with what the attach decision looks at."""

    confidence: float
    candidate: Candidate
    fts_rank: int | None = None
    # Distinctive words of the runbook's title (and declared alert names) the alert does not
    # mention: a runbook about "server" certificates for an alert about "client" ones.
    missing_words: list[str] = field(default_factory=list)


@dataclass
class _Hit:
    runbook_id: str
    title: str
    source_path: str | None
    services: list[str]
    alert_names: list[str]
    fts_rank: int | None = None
    fts_score: float = 0.0
    vector_rank: int | None = None
    similarity: float | None = None

    def rrf(self) -> float:
        return sum(1 / (_RRF_K + r) for r in (self.fts_rank, self.vector_rank) if r is not None)


class Matcher:
    def __init__(
        self,
        embedder: Embedder | None,
        thresholds: Thresholds | None = None,
        confirmer: Confirmer | None = None,
    ) -> None:
        self.embedder = embedder
        self.thresholds = thresholds or Thresholds()
        # Asked to confirm or reject a statistical decision (Claude, ddoc/alerts/match_confirm.py).
        self.confirmer = confirmer
        self._common: dict[str, tuple[float, list[str]]] = {}
        self._titles: dict[str, tuple[float, int, Counter[str]]] = {}

    def match(
        self, session: Session, *, tenant_id: str, alert: NormalizedAlert, methods: str = "all"
    ) -> MatchResult:
        """`methods`: all (explicit, then hybrid), or one of explicit | fulltext | vector."""
        if methods in ("all", "explicit"):
            explicit = self._explicit(session, tenant_id, alert)
            if explicit is not None or methods == "explicit":
                return explicit or MatchResult([], None)
        ranked = self.ranked(session, tenant_id=tenant_id, alert=alert, methods=methods)
        result = decide(alert, ranked, self.thresholds)
        if self.confirmer is not None and result.candidates:
            result = self.confirmer.confirm(session, tenant_id, alert, result)
        return result

    def rank(
        self, session: Session, *, tenant_id: str, alert: NormalizedAlert, methods: str = "all"
    ) -> list[tuple[float, Candidate]]:
        """Every retrieved candidate with its confidence, best first; no thresholds applied."""
        return [
            (r.confidence, r.candidate)
            for r in self.ranked(session, tenant_id=tenant_id, alert=alert, methods=methods)
        ]

    def ranked(
        self, session: Session, *, tenant_id: str, alert: NormalizedAlert, methods: str = "all"
    ) -> list[Ranked]:
        """`rank` with the evidence the attach decision (`decide`) looks at."""
        hits: dict[str, _Hit] = {}
        use_vector = methods in ("all", "vector") and self.embedder is not None
        if methods == "all" and use_vector:
            # Embedding the alert (CPU) and the full-text query (PostgreSQL) overlap: the vector
            # search runs on its own connection while the full-text search runs on this one.
            vector_hits: dict[str, _Hit] = {}
            future = _SEARCH_POOL.submit(
                self._vector_own_session, session, tenant_id, alert, vector_hits
            )
            self._fulltext(session, tenant_id, alert, hits)
            future.result()
            for runbook_id, hit in vector_hits.items():
                mine = hits.setdefault(runbook_id, hit)
                mine.vector_rank, mine.similarity = hit.vector_rank, hit.similarity
        elif methods == "fulltext":
            self._fulltext(session, tenant_id, alert, hits)
        elif use_vector:
            self._vector(session, tenant_id, alert, hits)
        titles = (
            {}
            if methods == "fulltext"
            else self._title_evidence(session, tenant_id, alert, list(hits.values()))
        )
        scored: list[tuple[float, Ranked]] = []
        for hit in hits.values():
            reasons: list[str]
            missing: list[str] = []
            if methods == "fulltext":
                confidence, reasons = 1.0 / hit.fts_rank if hit.fts_rank else 0.0, []
            else:
                confidence, reasons = self._confidence(alert, hit)
                evidence = titles.get(hit.runbook_id)
                if evidence is not None:
                    covered, missing, names_service = evidence
                    if covered < 1.0:
                        confidence -= TITLE_PENALTY * (1.0 - covered)
                        reasons.append(f"the alert mentions {covered:.0%} of its title")
                    declared = f"declares service {alert.service!r}" in reasons
                    if names_service and not declared:
                        confidence += SERVICE_TITLE_BONUS
                        reasons.append(f"its title names service {alert.service!r}")
                confidence = max(0.0, min(confidence, 0.99))
            candidate = Candidate(
                hit.runbook_id,
                hit.title,
                hit.source_path,
                round(confidence, 4),
                reasons,
                alert_names=list(hit.alert_names),
            )
            scored.append((hit.rrf(), Ranked(confidence, candidate, hit.fts_rank, missing)))
        scored.sort(key=lambda s: (-s[1].confidence, -s[0], s[1].candidate.runbook_id))
        return [r for _, r in scored]

    def _title_evidence(
        self, session: Session, tenant_id: str, alert: NormalizedAlert, hits: list[_Hit]
    ) -> dict[str, tuple[float, list[str], bool]]:
        """Per hit: the share of its title's words the alert mentions (each word weighted by
        how rare it is among the tenant's titles), the distinctive ones it does not mention,
        and whether the title names the alert's service. Words compare by their English stems
        (`_mentioned`), and two title words count when the alert writes them as one."""
        if not hits:
            return {}
        total, frequency = self._title_stats(session, tenant_id)
        per_hit = {h.runbook_id: search.title_words(h.title, h.alert_names) for h in hits}
        # Words that CamelCase split apart ("Mis Scheduled", "Start Up") and an alert may write
        # as one ("misscheduled", "startup").
        pairs = {a + b for ws in per_hit.values() for a, b in pairwise(ws)}
        alert_words = search_text.alert_words(alert)
        service_words = _service_words(alert.service or "")
        stems = search.lexemes(
            session,
            [*alert_words, *service_words, *pairs, *(w for ws in per_hit.values() for w in ws)],
        )
        mentioned = {lexeme for w in alert_words for lexeme in stems[w]}
        service = {lexeme for w in service_words for lexeme in stems[w]}
        generic = max(_GENERIC_MIN, total * _GENERIC_SHARE)
        evidence: dict[str, tuple[float, list[str], bool]] = {}
        for runbook_id, words in per_hit.items():
            weight = covered = 0.0
            missing: list[str] = []
            title_lexemes: set[str] = set()
            joined: set[str] = set()  # words covered as part of a pair the alert writes as one
            for first, second in pairwise(words):
                pair = stems[first + second]
                parts = {*stems[first], *stems[second]}
                # ("quotafully" stems to "quota": a pair counts only as a word of its own)
                if pair and not parts & set(pair) and all(lx in mentioned for lx in pair):
                    joined.update((first, second))
            for word in words:
                lexemes = stems[word]
                if not lexemes:
                    continue  # a stop word
                title_lexemes.update(lexemes)
                rarity = max(math.log((total + 1) / (frequency.get(lx, 0) + 1)) for lx in lexemes)
                rarity = max(rarity, 0.1)
                weight += rarity
                if word in joined or all(_mentioned(lx, mentioned) for lx in lexemes):
                    covered += rarity
                elif min(frequency.get(lx, 0) for lx in lexemes) <= generic:
                    missing.append(word)
            share = covered / weight if weight else 1.0
            names_service = bool(service) and service <= title_lexemes
            evidence[runbook_id] = (share, missing, names_service)
        return evidence

    def _title_stats(self, session: Session, tenant_id: str) -> tuple[int, Counter[str]]:
        """How many of the tenant's runbook titles each stem is in, recomputed every few
        minutes per process."""
        now = time.monotonic()
        cached = self._titles.get(tenant_id)
        if cached is not None and now - cached[0] < _TITLES_TTL_SECONDS:
            return cached[1], cached[2]
        rows = session.execute(
            text(
                "SELECT title, alert_names FROM runbooks"
                " WHERE tenant_id = :t AND archived_at IS NULL AND NOT draft"
            ),
            {"t": tenant_id},
        ).all()
        words = [search.title_words(row.title, row.alert_names) for row in rows]
        stems = search.lexemes(session, [w for ws in words for w in ws])
        frequency: Counter[str] = Counter()
        for ws in words:
            frequency.update({lexeme for w in ws for lexeme in stems[w]})
        self._titles[tenant_id] = (now, len(rows), frequency)
        return len(rows), frequency

    def _explicit(
        self, session: Session, tenant_id: str, alert: NormalizedAlert
    ) -> MatchResult | None:
        found: dict[str, Candidate] = {}
        services: dict[str, list[str]] = {}

        def candidate(
            runbook_id: str,
            title: str,
            source_path: str | None,
            runbook_services: list[str],
            alert_names: list[str],
        ) -> Candidate:
            services[runbook_id] = list(runbook_services)
            return found.setdefault(
                runbook_id,
                Candidate(
                    runbook_id,
                    title,
                    source_path,
                    1.0,
                    [],
                    method="explicit",
                    alert_names=list(alert_names),
                ),
            )

        hit = learned.lookup(session, tenant_id=tenant_id, fingerprint=fingerprints.of_alert(alert))
        if hit is not None:
            chosen = candidate(
                hit.runbook_id, hit.title, hit.source_path, hit.services, hit.alert_names
            )
            chosen.reasons.append(hit.reason)
            chosen.learned_trigger_id = hit.trigger_id
        by_url: set[str] = set()
        for url_hit in runbook_urls.resolve(session, tenant_id=tenant_id, alert=alert):
            candidate(
                url_hit.runbook_id,
                url_hit.title,
                url_hit.source_path,
                url_hit.services,
                url_hit.alert_names,
            ).reasons.extend(url_hit.reasons)
            by_url.add(url_hit.runbook_id)
        rows = session.execute(
            text(
                "SELECT id, title, source_path, services, alert_names, trigger_labels"
                " FROM runbooks WHERE tenant_id = :tenant AND archived_at IS NULL AND NOT draft"
                " AND ("
                "   (CAST(:name AS text) IS NOT NULL AND alert_names @> ARRAY[CAST(:name AS text)])"
                "   OR (trigger_labels <> '{}' AND CAST(:labels AS jsonb) @> trigger_labels))"
            ),
            {
                "tenant": tenant_id,
                "name": alert.alert_name,
                "labels": json.dumps(alert.labels),
            },
        ).all()
        declared: set[str] = set()
        for row in rows:
            declaring = candidate(row.id, row.title, row.source_path, row.services, row.alert_names)
            declared.add(row.id)
            if alert.alert_name and alert.alert_name in row.alert_names:
                declaring.reasons.append(f"declares alert {alert.alert_name!r} in its triggers")
            if row.trigger_labels and all(
                alert.labels.get(k) == v for k, v in row.trigger_labels.items()
            ):
                selector = ", ".join(f"{k}={v}" for k, v in sorted(row.trigger_labels.items()))
                declaring.reasons.append(f"its label selector {selector} matches the alert")
        if not found:
            return None
        candidates = sorted(found.values(), key=lambda c: (c.title, c.runbook_id))
        if hit is not None:
            # A human picked this runbook for alerts with exactly this fingerprint: the latest
            # and most specific evidence there is (and a pick is how a human corrects the rest).
            chosen = found[hit.runbook_id]
            others = [c for c in candidates if c is not chosen]
            return MatchResult([chosen, *others][:3], chosen)
        if by_url and declared and not by_url & declared:
            ordered = sorted(candidates, key=lambda c: c.runbook_id not in by_url)
            for c in ordered:
                c.reasons.append(
                    "the alert's runbook_url and the runbooks declaring the alert disagree:"
                    " a human picks one"
                )
            return MatchResult(ordered[:3], None)
        # The URL narrows the declaring runbooks to those it shows (or stands alone).
        pool = [c for c in candidates if c.runbook_id in (by_url & declared or by_url or declared)]
        if len(pool) == 1:
            others = [c for c in candidates if c is not pool[0]]
            if others and by_url and declared:
                pool[0].reasons.append(
                    "the only runbook declaring the alert that its runbook_url shows"
                )
            return MatchResult([pool[0], *others][:3], pool[0])
        by_service = [c for c in pool if alert.service in services[c.runbook_id]]
        if alert.service and len(by_service) == 1:
            by_service[0].reasons.append(f"the only one of them for service {alert.service!r}")
            return MatchResult(pool[:3], by_service[0])
        why = (
            f"the alert's runbook_url shows {len(pool)} runbooks"
            if by_url
            else f"{len(pool)} runbooks declare this alert"
        )
        for c in pool:
            c.reasons.append(f"{why}: a human picks one")
        return MatchResult(pool[:3], None)

    def _fulltext(
        self, session: Session, tenant_id: str, alert: NormalizedAlert, hits: dict[str, _Hit]
    ) -> None:
        words = search_text.query_words(alert)
        if not words:
            return
        # The alert's words as lexemes (English stems and exact words), minus the tenant's
        # most common ones, OR-ed: a word in most runbooks tells them apart no better than a
        # stop word, and ranking every runbook it matches is what makes the query slow.
        rows = session.execute(
            text(
                "WITH v AS (SELECT ts_delete(to_tsvector('english', :words)"
                "   || to_tsvector('simple', :words), CAST(:common AS text[])) AS v),"
                " q AS (SELECT to_tsquery('simple', string_agg(quote_literal(x), ' | ')) AS q"
                "   FROM v, unnest(tsvector_to_array(v.v)) AS x)"
                " SELECT id, title, source_path, services, alert_names,"
                " ts_rank(search_tsv, q.q) AS rank FROM runbooks, q"
                " WHERE q.q IS NOT NULL AND tenant_id = :tenant"
                " AND archived_at IS NULL AND NOT draft"
                " AND search_tsv @@ q.q ORDER BY rank DESC, id LIMIT :limit"
            ),
            {
                "words": words,
                "common": self._common_lexemes(session, tenant_id),
                "tenant": tenant_id,
                "limit": _RETRIEVE,
            },
        ).all()
        for position, row in enumerate(rows, start=1):
            hit = hits.setdefault(
                row.id, _Hit(row.id, row.title, row.source_path, row.services, row.alert_names)
            )
            hit.fts_rank = position
            hit.fts_score = float(row.rank)

    def _common_lexemes(self, session: Session, tenant_id: str) -> list[str]:
        """Lexemes in more than a fifth of the tenant's runbooks (from 200 runbooks up),
        recomputed every few minutes per process."""
        now = time.monotonic()
        cached = self._common.get(tenant_id)
        if cached is not None and now - cached[0] < _COMMON_TTL_SECONDS:
            return cached[1]
        total = session.execute(
            text(
                "SELECT count(*) FROM runbooks"
                " WHERE tenant_id = :t AND archived_at IS NULL AND NOT draft"
            ),
            {"t": tenant_id},
        ).scalar_one()
        common: list[str] = []
        if total >= _COMMON_MIN_RUNBOOKS:
            common = list(
                session.execute(
                    text(
                        "SELECT word FROM ts_stat(format('SELECT search_tsv FROM runbooks"
                        " WHERE tenant_id = %L AND archived_at IS NULL AND NOT draft',"
                        " CAST(:t AS text)))"
                        " WHERE ndoc > :cut"
                    ),
                    {"t": tenant_id, "cut": total * _COMMON_SHARE},
                ).scalars()
            )
        self._common[tenant_id] = (now, common)
        return common

    def _vector_own_session(
        self, session: Session, tenant_id: str, alert: NormalizedAlert, hits: dict[str, _Hit]
    ) -> None:
        with Session(session.get_bind()) as own:
            self._vector(own, tenant_id, alert, hits)

    def _vector(
        self, session: Session, tenant_id: str, alert: NormalizedAlert, hits: dict[str, _Hit]
    ) -> None:
        assert self.embedder is not None
        [vector] = self.embedder.embed([search_text.alert_text(alert)])
        rows = session.execute(
            text(
                "SELECT r.id, r.title, r.source_path, r.services, r.alert_names,"
                " 1 - (e.embedding <=> CAST(:vec AS vector)) AS similarity"
                " FROM runbook_embeddings e JOIN runbooks r ON r.id = e.runbook_id"
                " WHERE e.tenant_id = :tenant AND r.archived_at IS NULL AND NOT r.draft"
                " AND e.model = :model"
                " ORDER BY e.embedding <=> CAST(:vec AS vector) LIMIT :limit"
            ),
            {
                "vec": search.vector_literal(vector),
                "tenant": tenant_id,
                "model": self.embedder.model_name,
                "limit": _RETRIEVE,
            },
        ).all()
        for position, row in enumerate(rows, start=1):
            hit = hits.setdefault(
                row.id, _Hit(row.id, row.title, row.source_path, row.services, row.alert_names)
            )
            hit.vector_rank = position
            hit.similarity = float(row.similarity)

    def _confidence(self, alert: NormalizedAlert, hit: _Hit) -> tuple[float, list[str]]:
        """The candidate's similarity plus its full-text and service bonuses (the title
        evidence is applied by `ranked`)."""
        reasons = []
        confidence = 0.0
        if hit.similarity is not None:
            confidence = hit.similarity
            reasons.append(f"semantic similarity {hit.similarity:.2f} (rank {hit.vector_rank})")
        elif self.embedder is None:
            # Full text alone: its rank is all there is (no embedder configured).
            confidence = min(0.9, 0.3 + hit.fts_score)
        if hit.fts_rank is not None:
            confidence += FTS_TOP_BONUS if hit.fts_rank == 1 else FTS_HIT_BONUS
            reasons.append(f"full-text match (rank {hit.fts_rank})")
        if alert.service and _same_service(alert.service, hit.services):
            confidence += SERVICE_BONUS
            reasons.append(f"declares service {alert.service!r}")
        return confidence, reasons


def decide(alert: NormalizedAlert, ranked: list[Ranked], thresholds: Thresholds) -> MatchResult:
    """The statistical decision: attach the first candidate, offer up to three, or none.
    Reasons for not attaching are added to copies of the candidates (`ranked` is unchanged)."""
    offered = [
        replace(r.candidate, reasons=list(r.candidate.reasons))
        for r in ranked[:3]
        if r.confidence >= thresholds.suggest
    ]
    if not offered:
        return MatchResult([], None)
    first = ranked[0]
    top, best = first.confidence, offered[0]
    runner_up = ranked[1].confidence if len(ranked) > 1 else 0.0
    if alert.alert_name and best.alert_names and alert.alert_name not in best.alert_names:
        # The runbook is explicitly about other alerts: a lookalike, not this alert's.
        best.reasons.append(
            f"not attached: written for {', '.join(best.alert_names[:3])}, not {alert.alert_name}"
        )
    elif top < thresholds.attach:
        best.reasons.append(f"not attached: confidence below {thresholds.attach:.2f}")
    elif top - runner_up < thresholds.margin:
        best.reasons.append(f"not attached: the next candidate is within {thresholds.margin:.2f}")
    elif thresholds.require_fulltext_agreement and first.fts_rank != 1:
        best.reasons.append("not attached: full-text search ranks another runbook first")
    elif thresholds.require_title_words and first.missing_words:
        words = ", ".join(repr(w) for w in first.missing_words[:3])
        best.reasons.append(f"not attached: its title says {words}, the alert does not")
    else:
        return MatchResult(offered, best)
    return MatchResult(offered, None)


def _mentioned(lexeme: str, mentioned: set[str]) -> bool:
    """Whether a stem of the runbook's title is among the alert's: the same, one beginning the
    other (`fail` and `failur`, `err` and `error`: three letters at least), or the title's
    ending with a longer one of the alert's (`mismatch` and `match`). Negations and the other
    meaningful stop words ("not", "down") only count when they are the same."""
    if lexeme in mentioned:
        return True
    if lexeme in _EXACT_ONLY:
        return False
    for other in mentioned:
        if other in _EXACT_ONLY:
            continue
        short, long_ = (lexeme, other) if len(lexeme) <= len(other) else (other, lexeme)
        if len(short) >= 3 and long_.startswith(short):
            return True
        if len(other) >= 5 and lexeme.endswith(other):
            return True
    return False


def _service_words(name: str) -> list[str]:
    """A service's words, without its instance parts (OpsGenie's entity is often a host)."""
    return search.title_words(search_text.without_values(name))


def _same_service(service: str, declared: list[str]) -> bool:
    """The alert's service is one the runbook declares: the same name, or one whose words
    are all in the alert's (PagerDuty's "Payments API" for a runbook of `payments`)."""
    if service in declared:
        return True
    words = set(_service_words(service))
    return any((mine := set(_service_words(d))) and mine <= words for d in declared if d.strip())
