// The objective's alert (spec.objective): the share of time short of ready pods,
// as the forecaster's calibration counts it, stays above the policy's objective.
{
  prometheusAlerts+:: {
    local c = $._config,
    local m = c.metrics,
    local sel = if c.kedastralSelector == '' then '' else ', %s' % c.kedastralSelector,

    groups+: [
      {
        name: 'kedastral-objective',
        rules: [
          {
            alert: 'KedastralObjectiveMissed',
            expr: |||
              %(achieved)s{window="1d"%(sel)s}
                > ignoring (window)
              %(objective)s{%(sel0)s}
            ||| % {
              achieved: m.objectiveAchieved,
              objective: m.objectiveTarget,
              sel: sel,
              sel0: c.kedastralSelector,
            },
            'for': c.objectiveMissedFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A workload scaled by Kedastral runs short of pods more often than its objective.',
              description: 'Policy {{ $labels.policy }}: the share of time short of ready pods over the last day is {{ $value | humanizePercentage }}, above its objective, for %s.' % c.objectiveMissedFor,
            },
          },
        ],
      },
    ],
  },
}
