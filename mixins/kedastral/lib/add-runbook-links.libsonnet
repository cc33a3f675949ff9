// Adds runbook_url to every alert, from runbookURLPattern and the alert's name.
local utils = import 'utils.libsonnet';

{
  prometheusAlerts+::
    utils.mapRuleGroups(function(rule)
      if std.objectHas(rule, 'alert') then
        rule {
          annotations+: {
            runbook_url: $._config.runbookURLPattern % std.asciiLower(rule.alert),
          },
        }
      else rule),
}
