"""Blueprints: flows, stages, policies and groups as YAML files.

Flows live in the database; blueprints are how they travel between environments, how
they are reviewed in version control, and how the default flows ship. Applying a
blueprint is an idempotent upsert by natural key, and every file given to one call is
applied in one transaction, so a broken file never leaves a half-installed flow.

The format (version 1)::

    version: 1                       # required
    groups:                          # optional lists, applied in this order
      - name: admins                 # required, the natural key
        is_superuser: false
    policies:
      - name: admins-only            # required, the natural key
        type: group_membership       # a registered policy type (custom ones too)
        config: {group: admins}      # checked against the type's options
        execution_logging: false
    stages:
      - name: my-identification      # required, the natural key
        type: identification         # a registered stage type (custom ones too)
        config:                      # checked against the type's options
          user_fields: [username, email]
    flows:
      - slug: my-login               # required, the natural key; letters, digits, - and _
        name: My login               # required
        designation: authentication  # required: authentication, authorization, invalidation,
                                     #   enrollment, unenrollment, recovery, stage_configuration
        title: Welcome               # default ""
        authentication: none         # none, require_authenticated, require_unauthenticated,
                                     #   require_superuser
        denied_action: message_continue   # message, continue, message_continue
        policy_engine_mode: any      # any, all
        layout: stacked
        policies: []                 # policy bindings deciding who may run the flow
        bindings:
          - stage: my-identification # a stage in this file or already in the database
            order: 10                # unique within the flow (default 0)
            evaluate_on_plan: false
            re_evaluate_policies: true
            invalid_response_action: retry   # retry, restart, restart_with_context
            policy_engine_mode: any
            policies:                # policy bindings deciding whether the stage runs
              - policy: admins-only  # exactly one of policy:, group: or user: (a username)
                order: 0
                enabled: true
                negate: false
                failure_result: false
                timeout: 30

Omitted fields take the model defaults. References by name may point to objects defined
in any of the files applied together or already in the database; users named by
``user:`` must exist. Applying makes each flow's bindings and policy bindings match the
file exactly; objects the file does not mention are left alone (nothing is deleted
except bindings of the flows it defines).

.. versionadded:: 0.1
"""

from __future__ import annotations

from .apply import ApplyReport, apply_blueprint, apply_files
from .defaults import DEFAULT_BLUEPRINTS, install_default_flows
from .export import export_flow
from .schema import BlueprintDocument, BlueprintError, load_blueprint

__all__ = [
    "DEFAULT_BLUEPRINTS",
    "ApplyReport",
    "BlueprintDocument",
    "BlueprintError",
    "apply_blueprint",
    "apply_files",
    "export_flow",
    "install_default_flows",
    "load_blueprint",
]
