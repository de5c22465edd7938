"""Who does it fail for: every headline figure per subgroup (sex, age band, site, view …) with its interval,
the largest gap between subgroups with a within-class permutation test, subgroup separability of the
embeddings (Jones et al. 2023; Glocker et al. 2023) and a shortcut check on a re-weighted evaluation set."""
from medrep.subgroups.config import SubgroupConfig, parse_by
from medrep.subgroups.run import run_subgroups, subgroup_figures

__all__ = ["SubgroupConfig", "parse_by", "run_subgroups", "subgroup_figures"]
