"""`medrep audit`: configuration, orchestration of the four analyses, and the report."""
from medrep.audit.config import default_config, load_config, validate_config
from medrep.audit.runner import run_audit

__all__ = ["default_config", "load_config", "run_audit", "validate_config"]
