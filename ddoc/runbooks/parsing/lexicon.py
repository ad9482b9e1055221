"""Word lists and patterns that decide what prose means: section roles, imperatives,
conditions, escalation, prerequisites, rollback hints and vague instructions.

English first, with German, Spanish and Japanese basics so non-English runbooks still
get their structure. All patterns are compiled once, here.
"""

from __future__ import annotations

import re

# --- section roles -------------------------------------------------------------------------
ROLLBACK = "rollback"
PREREQ = "prereq"
INFO = "info"
REFS = "refs"
ESCALATION = "escalation"
DIAGNOSIS = "diagnosis"
ACTION = "action"
NEUTRAL = "neutral"

_ROLES: list[tuple[str, re.Pattern[str]]] = [
    (
        ROLLBACK,
        re.compile(
            r"\b(?:roll ?-?back|rolling back|undo|revert(?:ing)?|back(?:ing)? ?out)\b"
            r"|rückgängig|zurückrollen|deshacer|revertir|reversión|ロールバック|元に戻",
            re.I,
        ),
    ),
    (
        PREREQ,
        re.compile(
            r"\b(?:pre-?requisites?|requirements|before you (?:start|begin)|pre-?reqs?"
            r"|required access|access required)\b|voraussetzung|vorbedingung|requisitos"
            r"|antes de empezar|前提|事前準備|必要な権限",
            re.I,
        ),
    ),
    (
        INFO,
        re.compile(
            r"^(?:meaning|impact|description|overview|summary|about|background|context|symptoms?"
            r"|explanation|(?:what is|what are|why)\b(?!(?:\W+\w+){4})|architecture|introduction"
            r"|purpose|glossary"
            # a postmortem's (or a draft's) follow-ups are notes for later, not steps
            r"|action items?|follow-?ups?|lessons learned|root causes?|contributing factors"
            r"|what went (?:well|wrong)|notes? for (?:later|reviewers?)"
            r"|bedeutung|auswirkung|beschreibung|übersicht|hintergrund|zusammenfassung"
            r"|significado|impacto|descripción|resumen|contexto"
            r"|概要|意味|影響|説明|背景)",
            re.I,
        ),
    ),
    (
        REFS,
        re.compile(
            r"^(?:references?|see also|links?|related|further reading|resources|external links"
            r"|useful links|weiterführende|referencias|enlaces|参考|関連)",
            re.I,
        ),
    ),
    (
        ESCALATION,
        re.compile(
            r"\b(?:escalat\w*|contacts?|who to contact|getting help|on-?call)\b|eskalation"
            r"|escalamiento|escalado|エスカレーション|連絡先",
            re.I,
        ),
    ),
    (
        DIAGNOSIS,
        re.compile(
            r"\b(?:diagnos\w*|investigat\w*|troubleshoot\w*|debug\w*|checks?|verification"
            r"|triage|identify\w*)\b|untersuchung|fehlersuche|diagnóstico|診断|調査|確認",
            re.I,
        ),
    ),
    (
        ACTION,
        re.compile(
            r"\b(?:mitigat\w*|resolution|resolv\w*|remediat\w*|fix\w*|procedure|steps|actions?"
            r"|how to|recovery|recover\w*|workaround|runbook|execution|failover|solution)\b"
            r"|behebung|maßnahmen|lösung|abhilfe|mitigación|solución|pasos|resolución"
            r"|対処|緩和|手順|復旧|対応",
            re.I,
        ),
    ),
]

SUMMARY_HEADINGS = re.compile(
    r"^(?:meaning|description|overview|summary|about|introduction|purpose|context|what is"
    r"|bedeutung|beschreibung|übersicht|zusammenfassung|significado|descripción|resumen"
    r"|概要|意味|説明)",
    re.I,
)


# Only a heading that *is* a rollback section makes one ("Rollback", "How to undo", "5. Roll
# back"); one that merely mentions it ("search-indexer rollback") names a forward procedure.
_ROLLBACK_HEADING = re.compile(
    r"^\W*(?:(?:step\s+)?\d+[.):]?\s*)?(?:(?:how|steps?) to\s+|in case you need to\s+"
    r"|if you need to\s+|to\s+)?(?:roll(?:ing)? ?-?back|undo|undoing|revert(?:ing)?"
    r"|back(?:ing)? ?out|if (?:it|this|that|something|things) (?:goes|go|went) wrong)\b"
    r"|^\W*(?:rückgängig|zurückrollen|deshacer|revertir|reversión|annuler|retour arrière"
    r"|reverter|desfazer|terugdraaien|ロールバック|元に戻)",
    re.I,
)


def section_role(heading: str) -> str | None:
    text = heading.strip()
    for role, pattern in _ROLES:
        if pattern.search(text):
            if role == ROLLBACK and not _ROLLBACK_HEADING.match(text):
                continue
            return role
    return None


# Lines of a chat export that carry no instruction: who spoke when ("Mei 01:42", "Jordan Lee
# 2:14 AM", "[02:14] <ops-bot>"), reactions (":+1: 2"), "(edited)", "N replies".
CHAT_NOISE = re.compile(
    r"^\s*(?:(?:\[?\d{1,2}:\d{2}(?::\d{2})?\s*(?:[AaPp]\.?[Mm]\.?)?\]?\s*)"
    r"(?:@?[\w.-]+(?: [A-Z][\w.-]*){0,2}|<[^<>]+>)\s*:?"
    r"|(?:@?[\w.-]+(?: [A-Z][\w.-]*){0,2}|<[^<>]+>)\s*[-\u2014\u2013,:]?\s*"
    r"(?:\[?\d{1,2}:\d{2}(?::\d{2})?\s*(?:[AaPp]\.?[Mm]\.?)?\]?|\(edited\))\s*:?)\s*$"
    r"|^\s*(?:(?::[\w+-]+:|[\u2600-\u27bf\U0001f300-\U0001faff])\s*\d*\s*)+$"
    r"|^\s*\(edited\)\s*$"
    r"|^\s*\d+ (?:replies|reply|more replies)\b.*$"
    r"|^\s*(?:like|likes|reactions?)\s+\d+\s*$",
)

# A Confluence page pasted as text runs its section names into the first sentence:
# "Diagnosis  Start by checking …" (two or more spaces, or a tab, after the name).
RUN_IN_HEADING = re.compile(r"^(?P<head>[^\W\d_][\w &/'()-]{1,40}?)(?:\s{2,}|\t)(?=\S|$)")


# --- imperatives -----------------------------------------------------------------------------
_EN_VERBS = frozenset(
    """check verify ensure confirm run execute restart reboot start stop delete remove drain cordon
    uncordon scale increase decrease raise lower reduce wait monitor watch contact escalate page
    notify inform ask tell create update apply set unset enable disable open close go navigate
    visit browse login log ssh connect disconnect look inspect review examine investigate study
    analyze analyse debug troubleshoot identify determine find locate search grep compare consider
    try retry rerun re-run follow use install upgrade downgrade deploy redeploy rollback roll
    revert undo fix resolve repair replace rotate renew revoke regenerate copy move rename edit
    modify change adjust tune configure reconfigure add attach detach mount unmount resize expand
    extend clean cleanup clear flush purge prune truncate vacuum reindex kill terminate cancel
    pause resume suspend promote demote fail switch silence acknowledge ack
    mute snooze document record write post announce file report submit make take get list
    describe print dump export import backup restore snapshot trigger bump patch pin unpin tag
    label annotate taint untaint evict isolate block unblock allow deny ban unban throttle limit
    reset reload refresh sync resync rebuild recreate reinit reinitialize provision deprovision
    shut bring spin mark merge approve talk read call ping message reach double-check re-check
    recheck validate test measure estimate calculate collect gather capture save download upload
    fetch pull push exec enter exit quit type paste select click choose pick decide keep leave
    prepare plan schedule coordinate communicate request obtain remember hand declare send
    access reach continue
    """.split()
)
_DE_VERBS = frozenset(
    """prüfe überprüfe starte stoppe führe öffne lösche entferne kontaktiere eskaliere stelle
    melde informiere warte setze skaliere sichere erhöhe verringere kontrolliere beobachte
    suche vergleiche passe""".split()
)
_DE_INFINITIVES = frozenset(
    """prüfen überprüfen starten neustarten löschen entfernen ausführen kontaktieren eskalieren
    informieren warten skalieren sichern öffnen kontrollieren anpassen setzen erhöhen verringern
    beobachten untersuchen melden stoppen anhalten""".split()
)
_ES_VERBS = frozenset(
    """verifique verifica compruebe comprueba revise revisa ejecute ejecuta reinicie reinicia
    elimine elimina escale escala contacte contacta asegúrese asegúrate espere espera abra abre
    aumente aumenta reduzca reduce notifique notifica consulte consulta detenga detén inicie
    inicia aplique aplica""".split()
)
_FILLERS = re.compile(
    r"^(?:\W+|\[[ xX]?\]\s*|(?:then|next|now|first|firstly|secondly|finally|also|please"
    r"|optionally|afterwards|additionally|again|and|or|once done|if needed|if necessary"
    r"|\(optional\)|step \d+|schritt \d+|paso \d+|dann|danach|bitte|luego|después)\b[\s,:.-]*)+",
    re.I,
)
_YOU_SHOULD = re.compile(
    r"^(?:you|we) (?:should|must|need to|have to|will need to|may need to|'ll need to|"
    r"might need to)\s+(?:also\s+)?(\S+)|^(?:be sure|make sure|don't forget|do not forget)\b",
    re.I,
)
_DE_SIE = re.compile(r"^\w+(?:en|ern|eln) Sie\b")
_JA_ACTION = re.compile(
    r"(?:ください|しましょう|すること|して下さい)|(?:する|します|して|確認|実行|再起動|削除|連絡|エスカレーション)[。\s]*$"
)


def strip_fillers(text: str) -> str:
    return _FILLERS.sub("", text, count=1)


def is_imperative(text: str) -> bool:
    core = strip_fillers(text.strip())
    if not core:
        return False
    if _YOU_SHOULD.match(core) or _DE_SIE.match(core):
        return True
    first = core.split(None, 1)[0].rstrip(",.:;!").lower()
    if (first == "read" and core[5:9].lower() == "only") or first == "read-only":
        return False  # "read only filesystem" describes, it does not instruct
    if first in _EN_VERBS or first in _DE_VERBS or first in _ES_VERBS:
        return True
    last = core.rstrip(" .!。").rsplit(None, 1)[-1].lower() if core.strip() else ""
    if last in _DE_INFINITIVES:
        return True
    return _JA_ACTION.search(core) is not None


# --- conditions ------------------------------------------------------------------------------
# "When X, do Y" in prose is usually temporal (wait, then act), so it starts no decision;
# a heading "When the replica lags" names a case and does (HEADING_COND_START).
COND_START = re.compile(
    r"^(?:if|in case(?: of)?|should|unless|in the event(?: of| that)?|wenn|falls|sofern|si"
    r"|en caso de(?: que)?)\b\s*",
    re.I,
)
HEADING_COND_START = re.compile(
    r"^(?:if|when|whenever|in case(?: of)?|unless|wenn|falls|si|cuando|en caso de(?: que)?)\b\s*",
    re.I,
)
_JA_COND = re.compile(
    r"^(?:もし)?(?P<cond>.+?)(?:場合は|場合、|場合|なら|ならば|たら)[、,\s]*(?P<act>.+)$"
)
OTHERWISE = re.compile(
    r"^(?:otherwise|else|if not|if it does not|if it doesn't|sonst|andernfalls|ansonsten"
    r"|de lo contrario|si no|en caso contrario|そうでない場合|それ以外の場合)\b[\s,:]*",
    re.I,
)
# "…, restart it; otherwise escalate" inside one sentence.
INLINE_OTHERWISE = re.compile(
    r"[;,.]?\s+(?:otherwise|else|if not|sonst|andernfalls|de lo contrario|si no)\b[\s,:]*",
    re.I,
)
THEN = re.compile(r"^(?:then|dann|entonces)\b[\s,]*", re.I)
JA_COND = _JA_COND

EXIT_ZERO = re.compile(
    r"\b(?:returns?|exits?|exit(?:s)? with|exit code is|return code is|exit status is)\s+"
    r"(?:code\s+|status\s+)?(?:0|zero)\b|\b(?:the (?:command|script|check)|it|this)\s+"
    r"(?:succeeds|succeeded|is successful|works)\b",
    re.I,
)
EXIT_NONZERO = re.compile(
    r"\b(?:returns?|exits?(?: with)?)\s+(?:an?\s+)?(?:non-?zero|non zero|error|failure"
    r"|anything other than 0)|\bexit (?:code|status) is not (?:0|zero)\b|\b(?:the (?:command|script"
    r"|check)|it|this)\s+(?:fails|failed|errors out|returns an error)\b",
    re.I,
)
# --- escalation / prerequisites / rollback hints -------------------------------------------
ESCALATE = re.compile(
    r"\b(?:escalate|escalation to|page (?:the|an?|@|someone|whoever)|paging the|contact (?:the|your"
    r"|an?|@|someone)|reach out to|notify (?:the|@|your)|open an? (?:incident|issue|ticket)"
    r"|create an? incident|raise an? (?:incident|ticket)|declare an? incident|call the on-?call"
    r"|ping @|hand (?:it )?over to)|\beskalier|\bkontaktieren sie\b|\binformieren sie das\b"
    r"|\b(?:escale|escalar|contacte|contactar)\b|エスカレー|に連絡",
    re.I,
)
PREREQ_SENTENCE = re.compile(
    r"^(?:make sure|ensure|verify|check|be sure)\s+(?:that\s+)?(?:you(?:'re| are| have|'ve)"
    r"|your\b)|\byou(?:'ll| will)? need\b.*\b(?:access|permissions?|roles?|installed|credentials"
    r"|vpn|account|token|logged in|login|privileges?)\b|\b(?:requires?|required)\b.*\b(?:access"
    r"|permissions?|privileges?|roles?|admin|vpn|installed)\b|\bmust (?:have|be)\b.*\b(?:access"
    r"|permissions?|admin|vpn|installed|logged in)\b|\bvpn\b|stellen sie sicher, dass sie"
    r"|sie benötigen|asegúrese de que|necesita(?:s)? acceso|必要です|必要があります",
    re.I,
)
_PREREQ_VPN = re.compile(r"\bvpn\b", re.I)
_PREREQ_TOOL = re.compile(
    r"\b(?:installed|install|cli|binary|tool|client)\b|installiert|instalad|インストール", re.I
)
_PREREQ_ACCESS = re.compile(
    r"\b(?:access|permissions?|privileges?|roles?|admin|sudo|root|credentials|log(?:ged)? ?in"
    r"|login|kubeconfig|context|token|account|ssh|rights)\b|zugriff|berechtigung|acceso|permiso"
    r"|権限|アクセス|ログイン",
    re.I,
)


def prerequisite_kind(text: str) -> str:
    if _PREREQ_VPN.search(text):
        return "vpn"
    if _PREREQ_ACCESS.search(text):
        return "access"
    if _PREREQ_TOOL.search(text):
        return "tool"
    return "other"


ROLLBACK_SENTENCE = re.compile(
    r"^\W{0,2}(?:(?:fyi|ps|note|nb|btw|also|and|oh and)[:,]?\s+)?"
    r"(?:to (?:undo|revert|roll ?-?back|back out)|in order to (?:undo|revert|roll back)"
    r"|if you need to (?:undo|revert|roll back)|(?:rollback|roll back|undo|revert)\s*[:=-]"
    r"|(?:rollback|roll back|undo|revert)(?: it| this| that)?\s+(?:with|by running|using|via|is)\b"
    r"|zum rückgängigmachen|rückgängig\b|zurück(?:rollen|setzen)\s*:|para (?:deshacer|revertir"
    r"|volver atrás|volver a la versión anterior)|pour (?:annuler|revenir)|para (?:reverter|voltar)"
    r"|om terug te (?:draaien|zetten|gaan)|元に戻すには|元に戻す場合|戻す場合|ロールバックするには"
    r"|ロールバック(?:する)?場合)"
    r"|\bcan be (?:undone|reverted|rolled back)\b",
    re.I,
)
# A line that states a check of the step above it: "precheck: `cmd`", "verify: `cmd` within 5m".
EXPLICIT_CHECK = re.compile(r"^\W{0,3}(?P<kind>pre-?check|verify|verification)\s*:", re.I)
# Words right before a command that make it the undo of the one before it in the sentence:
# "bump it with bump.sh (revert: unbump.sh)", "…, undo with …", "…; to roll back run …".
ROLLBACK_CUE = re.compile(
    r"(?:\broll ?-?back|\brollback|\bundo|\brevert|\bback out|rückgängig|deshacer|revertir"
    r"|volver atrás|annuler|reverter|terugdraaien)\w*\b[\w\s,]{0,20}[:=-]?\s*[(\"']?$",
    re.I,
)
# A remark that says a step is destructive, after the step: "this wipes the queue, there is no
# undo". It raises that step's risk to red.
DESTRUCTIVE_WARNING = re.compile(
    r"\b(?:wipes|wiping|will wipe|destroys|irreversibl[ey]|irrecoverabl[ey]|cannot be undone"
    r"|can'?t be undone|no undo|no way back|no rollback|not reversible|permanently|data loss"
    r"|loses? (?:all )?(?:data|messages|the queue)|deletes? (?:all|every|everything)"
    r"|unrecoverable)\b"
    r"|\b(?:unwiderruflich|datenverlust|irreversible|pérdida de datos|perte de données"
    r"|perda de dados|onomkeerbaar)",
    re.I,
)
_WARNING_HINTS = (
    "wip",
    "destroy",
    "irrevers",
    "irrecover",
    "undo",
    "undone",
    "no way",
    "rollback",
    "reversible",
    "permanent",
    "data loss",
    "lose",
    "delete",
    "unrecover",
    "unwiderruf",
    "datenverlust",
    "pérdida",
    "perte",
    "perda",
    "onomkeer",
)


def warns_destructive(text: str) -> bool:
    """Does this remark say a step destroys something (DESTRUCTIVE_WARNING)? A substring
    check first: the pattern is an alternation, slow to search on every sentence."""
    low = text.lower()
    return any(h in low for h in _WARNING_HINTS) and DESTRUCTIVE_WARNING.search(text) is not None


def is_rollback_sentence(text: str) -> bool:
    """Does this sentence give a rollback (ROLLBACK_SENTENCE), cheaply."""
    if ROLLBACK_SENTENCE.match(text):
        return True
    return "can be " in text.lower() and ROLLBACK_SENTENCE.search(text) is not None


STEP_REF = re.compile(r"\b(?:step|schritt|paso)\s+#?(\d+)\b|ステップ\s*(\d+)|手順\s*(\d+)", re.I)
NEXT_REF = re.compile(
    r"\b(?:continue|proceed|move on|go on)\b(?:\s+(?:with|to)\s+the\s+next\s+step)?|\bnext step\b",
    re.I,
)
SECTION_REF = re.compile(
    r"\b(?:see|go to|follow|jump to|skip to|continue with|proceed (?:to|with))\s+(?:the\s+)?"
    r"[\"“']?(?P<name>[A-Z][\w /-]{2,60}?)[\"”']?\s+section\b",
    re.I,
)

# --- vagueness -------------------------------------------------------------------------------
VAGUE_START = re.compile(
    r"^(?:check|look at|look into|investigate|review|examine|inspect|monitor|debug|troubleshoot"
    r"|verify|study|analy[sz]e|fix|resolve|handle|find out|figure out|dig into|follow up)\b",
    re.I,
)
VAGUE_OBJECT = re.compile(
    r"\b(?:logs?|dashboards?|metrics|graphs?|monitoring|issue|problem|things|everything|it"
    r"|system|situation|what happened|root cause|cause|errors?|alerts?)\b",
    re.I,
)
SPECIFIC = re.compile(
    r"https?://|[\"\u201c'`]|\b\d+(?:\.\d+)?\s*(?:%|ms|s|m|h|gb|mb)\b|/[\w.-]+/", re.I
)

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[\u3002\uff01\uff1f])")
ABBREVIATIONS = re.compile(
    r"(?:\b(?:e\.g|i\.e|etc|vs|cf|approx|no|fig|ex|incl|resp|z\.B|bzw|usw)\.)$", re.I
)

# An item that is only a link or a "See …" pointer is a reference, not an instruction.
REFERENCE_ONLY = re.compile(
    r"^\s*(?:(?:see|cf\.?|siehe|véase|ver|参照)\b.*|https?://\S+|\[[^\]]*\]\([^)]*\)|\S+ \(https?://\S+\))\s*$",
    re.I,
)
