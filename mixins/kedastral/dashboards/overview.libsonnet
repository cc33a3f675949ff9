local d = import '../lib/dashboard.libsonnet';
local vars = import 'variables.libsonnet';

{
  grafanaDashboards+:: {
    local c = $._config,
    local m = c.metrics,
    local p = c.policyLabel,
    // Written series, recording rules and the scaler's metrics name a policy by namespace
    // (from the Kubernetes API; the scaler's: the ScaledObject's) and name; the
    // forecaster's own metrics by namespace/name.
    local pn = c.policyNamespaceLabel,
    local pp = if pn == '' then p else '%s, %s' % [pn, p],
    local lp = if pn == '' then '{{%s}}' % p else '{{%s}} {{%s}}' % [p, pn],
    // Selectors: the forecaster's and the scaler's /metrics, and the written kedastral_* series.
    local f = '%s, job=~"$job", instance=~"$instance", %s=~"$policy"' % [c.forecasterSelector, p],
    local fAll = '%s, job=~"$job", instance=~"$instance"' % c.forecasterSelector,
    local s = '%s, job=~"$job", instance=~"$instance"' % c.scalerSelector,
    local k = std.join(', ', std.filter(function(x) x != '', [c.kedastralSelector, '%s=~"$policy"' % p])),
    local r = '%s=~"$policy"' % p,

    'kedastral-overview.json': d.dashboard(
      c,
      'kedastral-overview.json',
      'Overview',
      'All Kedastral policies: desired replicas, forecast age, accuracy, forecaster and scaler health.',
      [
        vars.datasource(c),
        vars.job(c),
        vars.instance(c),
        d.queryVariable('policy', 'Policy', 'label_values(%s, %s)' % [m.desired, p], multi=true, includeAll=true),
      ],
      d.layout([
        [d.row('Policies')],
        [
          d.stat('Policies', 'Policies the forecaster evaluates.', 'short', [d.target('sum(%s{%s})' % [m.forecasterPolicies, fAll])]),
          d.stat('Invalid objects', 'Objects refused as invalid in the last configuration load.', 'short', [d.target('sum(%s{%s})' % [m.forecasterPoliciesInvalid, fAll])]),
          d.stat('Series forecast', 'Series the selected policies forecast in their last cycle.', 'short', [d.target('sum(%s{%s})' % [m.forecasterSeries, f])]),
          d.stat('Oldest forecast', 'The age of the oldest forecast among the selected policies.', 's', [d.target('max(%s{%s})' % [m.forecastAge, f])]),
        ],
        [
          d.timeseries('Desired replicas', 'kedastral_desired_replicas summed per policy (and its namespace, from the Kubernetes API): the replica count the forecaster asks for now.', 'short', [
            d.target('sum by (%s) (%s{%s})' % [pp, m.desired, k], lp),
          ]),
          d.timeseries('Forecast age', 'Seconds since the last successful cycle of each policy, as the forecaster reports it.', 's', [
            d.target('max by (%s) (%s{%s})' % [p, m.forecastAge, f], '{{%s}}' % p),
          ]),
        ],
        [d.row('Accuracy')],
        [
          d.timeseries('Relative error (1h)', 'Mean absolute error over the mean observed value in the last hour, per policy and ahead.', 'percentunit', [
            d.target('policy_ahead:kedastral_forecast_error:relative1h{%s}' % r, lp + ' {{ahead}}'),
          ], min=0),
          d.timeseries('Bias (1h)', 'Mean signed error in the last hour: above zero the forecast was too high, below too low.', 'short', [
            d.target('policy_ahead:kedastral_forecast_error:mean_signed1h{%s}' % r, lp + ' {{ahead}}'),
          ]),
        ],
        [
          d.timeseries('Coverage (1h)', 'Share of the last hour the observed value stayed at or below the predicted quantile; close to the quantile when calibrated.', 'percentunit', [
            d.target('policy_ahead:kedastral_forecast_coverage:ratio1h{%s}' % r, lp + ' {{ahead}}'),
          ], min=0, max=1),
          d.timeseries('Under-provisioned (1h)', 'Share of the last hour the observed value exceeded the capacity of the desired replicas (needs kedastral_capacity_per_replica).', 'percentunit', [
            d.target('policy:kedastral_underprovisioned:ratio1h{%s}' % r, lp),
          ], min=0, max=1),
        ],
        [d.row('Forecaster')],
        [
          d.timeseries('Cycles', 'Evaluation cycles per second, and failed ones per stage.', 'ops', [
            d.target('sum by (%s) (rate(%s{%s}[$__rate_interval]))' % [p, m.forecasterCycles, f], '{{%s}}' % p),
            d.target('sum by (%s, stage) (rate(%s{%s}[$__rate_interval]))' % [p, m.forecasterCycleFailures, f], '{{%s}} failed: {{stage}}' % p),
          ]),
          d.timeseries('Cycle duration (p99)', '99th percentile of the evaluation cycle duration: fetch, forecast, remote write.', 's', [
            d.target('histogram_quantile(0.99, sum by (%s, le) (rate(%s_bucket{%s}[$__rate_interval])))' % [p, m.forecasterCycleDuration, f], '{{%s}}' % p),
          ]),
        ],
        [
          d.timeseries('Remote write', 'Samples remote-written per second, and those that failed after retries.', 'ops', [
            d.target('sum by (instance) (rate(%s{%s}[$__rate_interval]))' % [m.remoteWriteSamples, fAll], 'sent {{instance}}'),
            d.target('sum by (instance) (rate(%s{%s}[$__rate_interval]))' % [m.remoteWriteSamplesFailed, fAll], 'failed {{instance}}'),
          ]),
          d.timeseries('Series failures', 'Series that could not be forecast, per policy and reason.', 'ops', [
            d.target('sum by (%s, reason) (rate(%s{%s}[$__rate_interval]))' % [p, m.forecasterSeriesFailures, f], '{{%s}} {{reason}}' % p),
          ]),
        ],
        [d.row('Scaler')],
        [
          d.timeseries('Requests', 'gRPC requests from KEDA per second, by method and status code.', 'reqps', [
            d.target('sum by (method, code) (rate(%s{%s}[$__rate_interval]))' % [m.scalerRequests, s], '{{method}} {{code}}'),
          ]),
          d.timeseries('Request latency (p99)', '99th percentile latency of the unary gRPC requests, by method.', 's', [
            d.target('histogram_quantile(0.99, sum by (method, le) (rate(%s_bucket{%s}[$__rate_interval])))' % [m.scalerRequestDuration, s], '{{method}}'),
          ]),
          d.timeseries('Stale answers', 'Requests that found the forecast stale or missing, by policy and outcome (reactive answer or error to KEDA).', 'reqps', [
            d.target('sum by (%s, outcome) (rate(%s{%s, %s}[$__rate_interval]))' % [pp, m.scalerStaleAnswers, s, r], lp + ' {{outcome}}'),
          ]),
        ],
      ]),
    ),
  },
}
