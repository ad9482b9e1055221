"""Risk classification of runbook commands: green (read-only), yellow (reversible change),
red (destructive or irreversible). See docs/RISK_RULES.md.

    >>> classify_command("kubectl get pods -o name | xargs kubectl delete").level
    <RiskClass.RED: 'red'>
"""

from ddoc.runbooks.risk.engine import RuleSet, classify_command, classify_sql, load_tenant_rules
from ddoc.runbooks.risk.model import PartAssessment, RiskAssessment, RiskRulesError

__all__ = [
    "PartAssessment",
    "RiskAssessment",
    "RiskRulesError",
    "RuleSet",
    "classify_command",
    "classify_sql",
    "load_tenant_rules",
]
