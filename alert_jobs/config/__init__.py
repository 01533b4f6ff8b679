"""The rules file: its models, the loader, and how check families extend it.

* :mod:`~alert_jobs.config.types`: secrets as env references, durations, names, cron;
* :mod:`~alert_jobs.config.rules`: :class:`RuleBase`, what every rule has;
* :mod:`~alert_jobs.config.receivers`, :mod:`~alert_jobs.config.routes`: who hears what;
* :mod:`~alert_jobs.config.families`: the sections families add (entry points);
* :mod:`~alert_jobs.config.rules_file`, :mod:`~alert_jobs.config.loader`: the whole file,
  read with every error located; :mod:`~alert_jobs.config.last_good`: the last good copy;
* :mod:`~alert_jobs.config.watch`: the rules a server answers with, reloaded off the
  request path.
"""

from alert_jobs.config.baseline import Baseline
from alert_jobs.config.families import (
    ENTRY_POINT_GROUP,
    FamilyRegistryError,
    RulesSection,
    added_family,
    family_problems,
    installed_families,
)
from alert_jobs.config.last_good import LoadedRules, last_good_path, load_rules_or_last_good
from alert_jobs.config.loader import (
    DEFAULT_RULES_FILE,
    RULES_FILE_ENV,
    RuleFileProblem,
    RulesError,
    default_rules_path,
    installed_rules_model,
    load_rules,
    parse_rules,
    yaml_path,
)
from alert_jobs.config.receivers import (
    RECEIVER_TYPES,
    AlertmanagerReceiverConfig,
    ConsoleReceiverConfig,
    DiscordReceiverConfig,
    EmailReceiverConfig,
    PagerDutyReceiverConfig,
    ReceiverBase,
    ReceiverConfig,
    SlackReceiverConfig,
    WebhookReceiverConfig,
)
from alert_jobs.config.routes import Defaults, EscalationStep, InhibitRule, Route
from alert_jobs.config.rules import Annotations, AnnotationsOverride, RuleBase
from alert_jobs.config.rules_file import Checks, RulesFile, rules_model, unknown_name
from alert_jobs.config.types import (
    NAME_PATTERN,
    Cron,
    Duration,
    EnvRef,
    MatcherText,
    Name,
    SecretMissingError,
    SecretOrText,
    Strict,
    Timezone,
    env_refs,
    resolve,
)
from alert_jobs.config.watch import RulesSnapshot, RulesWatcher

__all__ = [
    "DEFAULT_RULES_FILE",
    "ENTRY_POINT_GROUP",
    "NAME_PATTERN",
    "RECEIVER_TYPES",
    "RULES_FILE_ENV",
    "AlertmanagerReceiverConfig",
    "Annotations",
    "AnnotationsOverride",
    "Baseline",
    "Checks",
    "ConsoleReceiverConfig",
    "Cron",
    "Defaults",
    "DiscordReceiverConfig",
    "Duration",
    "EmailReceiverConfig",
    "EnvRef",
    "EscalationStep",
    "FamilyRegistryError",
    "InhibitRule",
    "LoadedRules",
    "MatcherText",
    "Name",
    "PagerDutyReceiverConfig",
    "ReceiverBase",
    "ReceiverConfig",
    "Route",
    "RuleBase",
    "RuleFileProblem",
    "RulesError",
    "RulesFile",
    "RulesSection",
    "RulesSnapshot",
    "RulesWatcher",
    "SecretMissingError",
    "SecretOrText",
    "SlackReceiverConfig",
    "Strict",
    "Timezone",
    "WebhookReceiverConfig",
    "added_family",
    "default_rules_path",
    "env_refs",
    "family_problems",
    "installed_families",
    "installed_rules_model",
    "last_good_path",
    "load_rules",
    "load_rules_or_last_good",
    "parse_rules",
    "resolve",
    "rules_model",
    "unknown_name",
    "yaml_path",
]
