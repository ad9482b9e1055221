"""A tenant's own risk rules: YAML kept in its settings (`PUT /settings/risk-rules`,
docs/RISK_RULES.md), compiled once per distinct text."""

from __future__ import annotations

import functools

from sqlmodel import Session

from ddoc.platform.tenancy import settings
from ddoc.runbooks.risk import RuleSet, load_tenant_rules

RISK_RULES_KEY = "risk_rules_yaml"


def risk_rules(session: Session, tenant_id: str) -> RuleSet | None:
    """The tenant's own risk rules (YAML in its settings), compiled once per distinct text."""
    yaml_text = settings(session, tenant_id).get(RISK_RULES_KEY)
    return _compiled_rules(yaml_text) if yaml_text else None


@functools.lru_cache(maxsize=256)
def _compiled_rules(yaml_text: str) -> RuleSet:
    return load_tenant_rules(yaml_text)
