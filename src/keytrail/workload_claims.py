"""Shapes of workload identities in OIDC/JWT subjects and claims (shared by ingest and graph).

A CI system or an orchestrator logging in with a JWT is a workload, not a person, even
though Vault's ``jwt``/``oidc`` auth methods and CloudTrail's web-identity federation
carry it exactly like a person's login. The subject (``sub``) and a few claims say which;
the shapes come from each issuer's public documentation:

- GitHub Actions: ``repo:<owner>/<repo>:ref:refs/heads/main`` (also ``:environment:``,
  ``:pull_request``, ``:job_workflow_ref:``), issuer ``token.actions.githubusercontent.com``;
- Kubernetes service-account tokens: ``system:serviceaccount:<namespace>:<name>``;
- Terraform Cloud / Enterprise workload identity:
  ``organization:<org>:project:<project>:workspace:<ws>:run_phase:<phase>``;
- GitLab CI: ``project_path:<group>/<project>:ref_type:<type>:ref:<ref>``, claims
  ``project_path``, ``pipeline_source``;
- CircleCI: issuer ``https://oidc.circleci.com/org/<org-id>``, ``org/<id>/project/<id>/...``
  subjects and ``oidc.circleci.com/project-id`` claims.
"""

from __future__ import annotations

import re

#: ``(workload family, regular expression on the subject)``, checked in order.
SUBJECT_SHAPES: tuple[tuple[str, str], ...] = (
    ("github-actions", r"^repo:[^/:]+/[^:]+:"),
    ("kubernetes", r"^system:serviceaccount:[^:]+:[^:]+"),
    ("terraform-cloud", r"^organization:[^:]+:project:[^:]+:workspace:[^:]+"),
    ("gitlab-ci", r"^project_path:[^:]+/[^:]+:"),
    ("circleci", r"^org/[0-9a-f-]{36}/project/[0-9a-f-]{36}"),
)

#: ``(workload family, claim or issuer text)``: a claim key or issuer that only that CI system uses.
CLAIM_MARKERS: tuple[tuple[str, str], ...] = (
    ("github-actions", "token.actions.githubusercontent.com"),
    ("github-actions", "job_workflow_ref"),
    ("terraform-cloud", "terraform_workspace_id"),
    ("terraform-cloud", "terraform_run_phase"),
    ("gitlab-ci", "pipeline_source"),
    ("gitlab-ci", "project_path"),
    ("circleci", "oidc.circleci.com"),
)

_COMPILED = tuple((fam, re.compile(rx)) for fam, rx in SUBJECT_SHAPES)


def workload_family(subject: str | None) -> str | None:
    """The workload family a JWT subject names, or ``None`` when it has no workload shape."""
    if not subject:
        return None
    for fam, rx in _COMPILED:
        if rx.search(subject):
            return fam
    return None
