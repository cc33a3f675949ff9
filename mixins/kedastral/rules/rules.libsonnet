// Recording rules: forecast accuracy per policy and ahead, under-provisioning, forecast age.
local sel(s) = if s == '' then '' else '{%s}' % s;
local withSel(s, extra) = if s == '' then '{%s}' % extra else '{%s, %s}' % [s, extra];

{
  prometheusRules+:: {
    local c = $._config,
    local m = c.metrics,
    // A policy is its name and, from the Kubernetes API, its namespace.
    local p = if c.policyNamespaceLabel == '' then c.policyLabel else '%s, %s' % [c.policyNamespaceLabel, c.policyLabel],

    groups+: [
      {
        // One error series per policy, series and ahead: the prediction made `ahead` ago for
        // now, minus what was observed now. Positive: the forecast was too high. With a
        // policy interval of i, `offset ahead` finds the prediction written up to i earlier.
        // One group: rules of a group run in order, so the window rules below always see
        // this evaluation's series (two groups would race, one interval apart).
        name: 'kedastral-forecast-accuracy',
        rules: std.flattenArrays([
          [
            {
              record: 'policy_series_ahead:kedastral_forecast_error:signed',
              // The label is there already; it tells promtool the rules are not duplicates.
              labels: { ahead: ahead },
              expr: |||
                %(predicted)s offset %(ahead)s
                  - ignoring (ahead, quantile) group_left
                %(observed)s
              ||| % {
                predicted: m.predicted + withSel(c.kedastralSelector, 'ahead="%s"' % ahead),
                observed: m.observed + sel(c.kedastralSelector),
                ahead: ahead,
              },
            },
          ]
          for ahead in c.accuracyAheads
        ]) + [
          {
            record: 'policy_series_ahead:kedastral_forecast_error:abs',
            expr: 'abs(policy_series_ahead:kedastral_forecast_error:signed)',
          },
          {
            // 1 when the observed value stayed at or below the predicted quantile.
            record: 'policy_series_ahead:kedastral_forecast_covered:bool',
            expr: 'policy_series_ahead:kedastral_forecast_error:signed >= bool 0',
          },
          {
            // 1 when the observed value exceeded what the desired replicas can serve: the
            // replicas it needs (observed over the capacity per replica of its policy, and
            // source for a policy with several) above the desired replicas of its series.
            record: 'policy_series:kedastral_underprovisioned:bool',
            expr: |||
              (%(observed)s / on (%(p)s, %(source)s) group_left %(capacity)s)
                > bool ignoring (%(source)s) group_left
              %(desired)s
            ||| % {
              observed: m.observed + sel(c.kedastralSelector),
              desired: m.desired + sel(c.kedastralSelector),
              capacity: m.capacityPerReplica + sel(c.kedastralSelector),
              p: p,
              source: c.sourceLabel,
            },
          },
          {
            // Seconds since the newest desired-replicas sample: what the scaler sees. The
            // series ends once that sample is older than the lookback delta (5m by default);
            // KedastralForecastStale reads the forecaster's kedastral_forecast_age_seconds,
            // which keeps growing.
            record: 'policy:kedastral_forecast_age:seconds',
            expr: 'time() - max by (%(p)s) (timestamp(%(desired)s))' % {
              desired: m.desired + sel(c.kedastralSelector),
              p: p,
            },
          },
        ] + std.flattenArrays([
          [
            {
              // Mean absolute error.
              record: 'policy_ahead:kedastral_forecast_error:mean_abs%s' % w,
              expr: 'avg by (%(p)s, ahead) (avg_over_time(policy_series_ahead:kedastral_forecast_error:abs[%(w)s]))' % { p: p, w: w },
            },
            {
              // Mean signed error (bias): positive means over-forecasting.
              record: 'policy_ahead:kedastral_forecast_error:mean_signed%s' % w,
              expr: 'avg by (%(p)s, ahead) (avg_over_time(policy_series_ahead:kedastral_forecast_error:signed[%(w)s]))' % { p: p, w: w },
            },
            {
              // Relative error: summed absolute error over summed observed value (WAPE).
              record: 'policy_ahead:kedastral_forecast_error:relative%s' % w,
              expr: |||
                sum by (%(p)s, ahead) (avg_over_time(policy_series_ahead:kedastral_forecast_error:abs[%(w)s]))
                  / ignoring (ahead) group_left
                sum by (%(p)s) (avg_over_time(%(observed)s[%(w)s]))
              ||| % { p: p, w: w, observed: m.observed + sel(c.kedastralSelector) },
            },
            {
              // Share of time the observed value stayed within the predicted quantile;
              // close to the policy's quantile when the forecast is calibrated.
              record: 'policy_ahead:kedastral_forecast_coverage:ratio%s' % w,
              expr: 'avg by (%(p)s, ahead) (avg_over_time(policy_series_ahead:kedastral_forecast_covered:bool[%(w)s]))' % { p: p, w: w },
            },
            {
              // Share of time the observed value exceeded the capacity of the desired replicas.
              record: 'policy:kedastral_underprovisioned:ratio%s' % w,
              expr: 'avg by (%(p)s) (avg_over_time(policy_series:kedastral_underprovisioned:bool[%(w)s]))' % { p: p, w: w },
            },
          ]
          for w in c.accuracyWindows
        ]),
      },
    ],
  },
}
