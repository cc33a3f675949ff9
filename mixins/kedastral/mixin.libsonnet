// The Kedastral monitoring mixin: prometheusRules, prometheusAlerts, grafanaDashboards.
// Override _config (config.libsonnet) to adapt selectors and thresholds.
(import 'config.libsonnet') +
(import 'rules/rules.libsonnet') +
(import 'alerts/alerts.libsonnet') +
(import 'alerts/objective.libsonnet') +
(import 'lib/add-runbook-links.libsonnet') +
(import 'dashboards/overview.libsonnet') +
(import 'dashboards/policy.libsonnet')
