local d = import '../lib/dashboard.libsonnet';
local vars = import 'variables.libsonnet';

{
  grafanaDashboards+:: {
    local c = $._config,
    local m = c.metrics,
    local p = c.policyLabel,
    local pn = c.policyNamespaceLabel,
    local pp = if pn == '' then p else '%s, %s' % [pn, p],
    // Series written for a policy carry its namespace when it came from the Kubernetes
    // API; "All" (.*) matches policy files' series too, which have none. The forecaster's
    // own metrics name such a policy namespace/name instead.
    local ns = if pn == '' then [] else ['%s=~"$policy_namespace"' % pn],
    local fp = if pn == '' then '%s="$policy"' % p else '%s=~"(${policy_namespace}/)?${policy}"' % p,
    local f = '%s, job=~"$job", instance=~"$instance", %s' % [c.forecasterSelector, fp],
    local s = std.join(', ', ['%s, job=~"$job", instance=~"$instance", %s="$policy"' % [c.scalerSelector, p]] + ns),
    local k = std.join(', ', std.filter(function(x) x != '', [c.kedastralSelector, '%s="$policy"' % p] + ns)),
    local r = std.join(', ', ['%s="$policy"' % p] + ns),
    // The workload the policy scales: its targetRef, from the forecaster's policy_info
    // (target_kind, target_name), in the policy's namespace when it has one.
    local ksmNs = if pn == '' then [] else ['namespace=~"$policy_namespace"'],
    local ksmOf(label) = std.join(', ', [c.kubeStateMetricsSelector, '%s=~"$target"' % label] + ksmNs),
    local ksm = ksmOf('deployment'),
    // Only the kind the targetRef names (no kind is a Deployment).
    local ofKind(kinds) = 'max(%s{%s, target_kind=~"%s"})' % [m.forecasterPolicyInfo, f, kinds],
    local workload(metric, label, kinds) = 'sum by (namespace, %s) (%s{%s}) and on () %s' % [label, metric, ksmOf(label), ofKind(kinds)],
    local specReplicas = [
      workload(m.kubeReplicasSpec, 'deployment', 'Deployment|'),
      workload(m.kubeStatefulSetReplicasSpec, 'statefulset', 'StatefulSet'),
    ],
    local readyReplicas = [
      workload(m.kubeReplicasReady, 'deployment', 'Deployment|'),
      workload(m.kubeStatefulSetReplicasReady, 'statefulset', 'StatefulSet'),
    ],

    'kedastral-policy.json': d.dashboard(
      c,
      'kedastral-policy.json',
      'Policy',
      'One Kedastral policy: its forecast against the outcome, replicas, accuracy, forecaster and scaler.',
      [
        vars.datasource(c),
        vars.job(c),
        vars.instance(c),
      ] + (
        if pn == '' then [] else [
          d.queryVariable('policy_namespace', 'Namespace', 'label_values(%s, %s)' % [m.desired, pn], includeAll=true, allValue='.*'),
        ]
      ) + [
        d.queryVariable('policy', 'Policy', 'label_values(%s, %s)' % [m.desired + (if pn == '' then '' else '{%s}' % ns[0]), p]),
        d.queryVariable('ahead', 'Ahead', 'label_values(%s{%s}, ahead)' % [m.predicted, k], multi=true, includeAll=true),
        d.adhocVariable('series', 'Series'),
        d.queryVariable('target', 'Target', 'label_values(%s{%s}, target_name)' % [m.forecasterPolicyInfo, f]),
      ],
      d.layout([
        [d.row('Forecast and outcome')],
        [
          d.timeseries('Observed vs predicted $ahead ahead', 'The observed value and the prediction made $ahead earlier for the same moment (shifted by $ahead), so that prediction and outcome line up in time.', 'short', [
            d.target('%s{%s}' % [m.observed, k]),
            d.target('%s{%s, ahead="$ahead"} offset $ahead' % [m.predicted, k]),
          ]) { repeat: 'ahead', repeatDirection: 'h', maxPerRow: 3 },
        ],
        [
          d.timeseries('Replicas', 'Desired replicas written by the forecaster, the count the scaler last answered to KEDA, and the available replicas of the Deployment the policy targets (kube-state-metrics).', 'short', [
            d.target('sum(%s{%s})' % [m.desired, k], 'desired (forecaster)'),
            d.target('max by (metric) (%s{%s})' % [m.scalerDesiredReplicas, s], 'answered to KEDA {{metric}}'),
            d.target('sum by (namespace, deployment) (%s{%s})' % [m.kubeReplicasAvailable, ksm], 'available {{namespace}}/{{deployment}}'),
          ]),
          d.timeseries('Load vs capacity', 'The observed value against the capacity of the desired replicas (desired replicas × kedastral_capacity_per_replica), per source for a policy with several; above the line is under-provisioned.', 'short', [
            d.target('sum by (%s) (%s{%s})' % [c.sourceLabel, m.observed, k], 'observed {{%s}}' % c.sourceLabel),
            d.target('sum by (%s) (sum by (%s) (%s{%s}) * on (%s) group_right %s{%s})' % [c.sourceLabel, pp, m.desired, k, pp, m.capacityPerReplica, k], 'capacity of desired replicas {{%s}}' % c.sourceLabel),
          ]),
        ],
        [d.row('Shadow rollout: what Kedastral would have asked for, against what ran')],
        [
          d.timeseries('Desired vs the workload', "What the forecaster would have asked for (kedastral_desired_replicas, summed over the policy's series) against the spec and ready replicas of the policy's target (targetRef, through kedastral_forecaster_policy_info) from kube-state-metrics. Without the Kedastral trigger the spec is what the HPA or whoever scales the workload set; desired above ready before a rise is pods Kedastral would have started early.", 'short', [
            d.target('sum(%s{%s})' % [m.desired, k], 'desired (Kedastral)'),
            d.target(specReplicas[0], 'spec {{namespace}}/{{deployment}}'),
            d.target(readyReplicas[0], 'ready {{namespace}}/{{deployment}}'),
            d.target(specReplicas[1], 'spec {{namespace}}/{{statefulset}}'),
            d.target(readyReplicas[1], 'ready {{namespace}}/{{statefulset}}'),
          ], min=0),
          d.timeseries('Desired minus what ran', "kedastral_desired_replicas minus the target's spec replicas, and minus its ready replicas: above zero Kedastral would have run more pods (ahead of a rise, or headroom), below zero fewer. Summed over the policy's series and the target's namespaces.", 'short', [
            d.target('sum(%s{%s}) - sum(%s or %s)' % [m.desired, k, specReplicas[0], specReplicas[1]], 'desired − spec'),
            d.target('sum(%s{%s}) - sum(%s or %s)' % [m.desired, k, readyReplicas[0], readyReplicas[1]], 'desired − ready'),
          ]),
        ],
        [d.row('Accuracy')],
        [
          d.timeseries('Relative error', 'Mean absolute error over the mean observed value, per ahead, over 1h and 1d.', 'percentunit', [
            d.target('policy_ahead:kedastral_forecast_error:relative1h{%s, ahead=~"$ahead"}' % r, '{{ahead}} 1h'),
            d.target('policy_ahead:kedastral_forecast_error:relative1d{%s, ahead=~"$ahead"}' % r, '{{ahead}} 1d'),
          ], min=0),
          d.timeseries('Absolute and signed error', 'Mean absolute error and mean signed error (bias, above zero: forecast too high) over the last hour, per ahead.', 'short', [
            d.target('policy_ahead:kedastral_forecast_error:mean_abs1h{%s, ahead=~"$ahead"}' % r, '{{ahead}} absolute'),
            d.target('policy_ahead:kedastral_forecast_error:mean_signed1h{%s, ahead=~"$ahead"}' % r, '{{ahead}} bias'),
          ]),
        ],
        [
          d.timeseries('Coverage', 'Share of time the observed value stayed at or below the predicted quantile, over 1h and 1d; compare with the quantile.', 'percentunit', [
            d.target('policy_ahead:kedastral_forecast_coverage:ratio1h{%s, ahead=~"$ahead"}' % r, '{{ahead}} 1h'),
            d.target('policy_ahead:kedastral_forecast_coverage:ratio1d{%s, ahead=~"$ahead"}' % r, '{{ahead}} 1d'),
          ], min=0, max=1),
          d.timeseries('Under-provisioned', 'Share of time the observed value exceeded the capacity of the desired replicas, over 1h and 1d; and, from the ready replicas (kube-state-metrics), the share of time demand exceeded what the ready pods serve (kedastral_underprovision_seconds_total).', 'percentunit', [
            d.target('policy:kedastral_underprovisioned:ratio1h{%s}' % r, 'desired, 1h'),
            d.target('policy:kedastral_underprovisioned:ratio1d{%s}' % r, 'desired, 1d'),
            d.target('max(rate(%s{%s}[$__rate_interval]))' % [m.underprovisionSeconds, k], 'ready pods'),
          ], min=0, max=1),
          d.table('Published forecasts', 'The quantile the policy publishes for each ahead, and how many series it forecasts.', 'short', [
            d.target('count by (ahead, quantile) (%s{%s})' % [m.predicted, k], instant=true),
          ]),
          d.timeseries('Model in use', 'Series per model answering over the lead time: the policy model, or the one auto chose for each series by its recent error.', 'short', [
            d.target('sum by (model) (%s{%s})' % [m.forecasterSeriesByModel, f], '{{model}}'),
          ], stack=true),
        ],
        [d.row('Forecaster')],
        [
          d.timeseries('Forecast age', 'Seconds since the last successful cycle (forecaster), since the newest written sample (recording rule), and as the scaler saw it.', 's', [
            d.target('max(%s{%s})' % [m.forecastAge, f], 'forecaster'),
            d.target('policy:kedastral_forecast_age:seconds{%s}' % r, 'written series'),
            d.target('max by (metric) (%s{%s})' % [m.scalerForecastAge, s], 'scaler {{metric}}'),
          ]),
          d.timeseries('Cycle duration', 'Median and 99th percentile of the cycle duration, and of its history fetch.', 's', [
            d.target('histogram_quantile(0.5, sum by (le) (rate(%s_bucket{%s}[$__rate_interval])))' % [m.forecasterCycleDuration, f], 'cycle p50'),
            d.target('histogram_quantile(0.99, sum by (le) (rate(%s_bucket{%s}[$__rate_interval])))' % [m.forecasterCycleDuration, f], 'cycle p99'),
            d.target('histogram_quantile(0.99, sum by (le) (rate(%s_bucket{%s}[$__rate_interval])))' % [m.forecasterQueryDuration, f], 'fetch p99'),
          ]),
          d.timeseries('Failures', 'Failed cycles per stage, missed cycles and series that could not be forecast, per second.', 'ops', [
            d.target('sum by (stage) (rate(%s{%s}[$__rate_interval]))' % [m.forecasterCycleFailures, f], 'cycle failed: {{stage}}'),
            d.target('sum(rate(%s{%s}[$__rate_interval]))' % [m.forecasterMissedCycles, f], 'missed cycles'),
            d.target('sum by (reason) (rate(%s{%s}[$__rate_interval]))' % [m.forecasterSeriesFailures, f], 'series failed: {{reason}}'),
          ]),
        ],
        [d.row('Scaler answers')],
        [
          d.timeseries('Answers by source', 'Replica counts the scaler answered KEDA for this policy per second, by source (forecast, hybrid, reactive).', 'reqps', [
            d.target('sum by (source) (rate(%s{%s}[$__rate_interval]))' % [m.scalerAnswers, s], '{{source}}'),
          ], stack=true),
          d.timeseries('Stale answers', 'Requests that found the forecast stale or missing, by outcome: answered from the reactive signal, or an error to KEDA.', 'reqps', [
            d.target('sum by (outcome) (rate(%s{%s}[$__rate_interval]))' % [m.scalerStaleAnswers, s], '{{outcome}}'),
          ], stack=true),
        ],
      ]),
    ),
  },
}
