// Alerts. severity, summary and description are set here; runbook_url is added to every
// alert in one place (lib/add-runbook-links.libsonnet).
{
  prometheusAlerts+:: {
    local c = $._config,
    local m = c.metrics,
    local p = c.policyLabel,
    local f = c.forecasterSelector,
    local s = c.scalerSelector,

    groups+: [
      {
        name: 'kedastral-forecaster',
        rules: [
          {
            alert: 'KedastralForecasterDown',
            expr: 'absent(up{%s} == 1)' % f,
            'for': c.forecasterDownFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'The Kedastral forecaster is down.',
              description: 'No Kedastral forecaster target has been up for %s: forecasts are not updated and the scaler will find them stale.' % c.forecasterDownFor,
            },
          },
          {
            alert: 'KedastralForecasterNotEvaluating',
            expr: |||
              sum by (job, instance) (rate(%(cycles)s{%(f)s}[10m])) == 0
                and on (job, instance)
              %(policies)s{%(f)s} > 0
            ||| % { cycles: m.forecasterCycles, policies: m.forecasterPolicies, f: f },
            'for': '10m',
            labels: { severity: 'critical' },
            annotations: {
              summary: 'The Kedastral forecaster runs no evaluation cycles.',
              description: 'Forecaster {{ $labels.instance }} has policies but ran no evaluation cycle in the last 10 minutes.',
            },
          },
          {
            alert: 'KedastralForecastStale',
            expr: 'max by (%(p)s) (%(age)s{%(f)s}) > %(threshold)d' % {
              age: m.forecastAge,
              f: f,
              p: p,
              threshold: c.forecastStaleSeconds,
            },
            'for': c.forecastStaleFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A Kedastral forecast is stale.',
              description: 'The forecast of policy {{ $labels.policy }} was last written {{ $value | humanizeDuration }} ago; the scaler answers from the reactive signal or fails.',
            },
          },
          {
            alert: 'KedastralRemoteWriteFailing',
            expr: |||
              sum by (job, instance) (rate(%(failed)s{%(f)s}[5m]))
                /
              (
                sum by (job, instance) (rate(%(failed)s{%(f)s}[5m]))
                  +
                sum by (job, instance) (rate(%(sent)s{%(f)s}[5m]))
              )
                > %(threshold)s
            ||| % { failed: m.remoteWriteSamplesFailed, sent: m.remoteWriteSamples, f: f, threshold: c.remoteWriteFailureRatio },
            'for': c.remoteWriteFailingFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The Kedastral forecaster fails to write its forecasts.',
              description: 'Forecaster {{ $labels.instance }} failed to remote-write {{ $value | humanizePercentage }} of its samples.',
            },
          },
          {
            alert: 'KedastralPoliciesInvalid',
            expr: 'max by (job, instance) (%s{%s}) > 0' % [m.forecasterPoliciesInvalid, f],
            'for': c.policiesInvalidFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'Kedastral refused invalid policies.',
              description: 'Forecaster {{ $labels.instance }} refused {{ $value }} invalid objects in its last configuration load; those policies are not evaluated.',
            },
          },
          {
            alert: 'KedastralConfigReloadFailed',
            expr: 'max by (job, instance) (%s{%s}) == 0' % [m.forecasterConfigReloadSuccessful, f],
            'for': c.policiesInvalidFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The Kedastral forecaster failed to load its configuration.',
              description: 'The last configuration load of forecaster {{ $labels.instance }} failed; it keeps running the policies it loaded before.',
            },
          },
        ],
      },
      {
        name: 'kedastral-forecast-quality',
        rules: [
          {
            alert: 'KedastralForecastErrorHigh',
            expr: 'policy_ahead:kedastral_forecast_error:relative1h{ahead="%s"} > %s' % [c.forecastErrorAhead, c.forecastErrorRelativeThreshold],
            'for': c.forecastErrorFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A Kedastral forecast is inaccurate.',
              description: 'The {{ $labels.ahead }}-ahead forecast of policy {{ $labels.policy }} was off by {{ $value | humanizePercentage }} of the observed value over the last hour.',
            },
          },
          {
            alert: 'KedastralUnderprovisioned',
            expr: 'policy:kedastral_underprovisioned:ratio1h > %s' % c.underprovisionedRatioThreshold,
            'for': c.underprovisionedFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'A workload scaled by Kedastral is under-provisioned.',
              description: 'Policy {{ $labels.policy }}: the observed load exceeded the capacity of the desired replicas {{ $value | humanizePercentage }} of the last hour.',
            },
          },
          {
            // From the forecaster's counter of time demand exceeded what the *ready* pods
            // serve (kube-state-metrics): catches pods that start slower than leadTime, or
            // an HPA that did not follow the answer, which the rule above cannot see.
            alert: 'KedastralReadyPodsShort',
            expr: 'max by (%(p)s) (rate(%(m)s%(sel)s[1h])) > %(t)s' % {
              p: c.policyLabel,
              m: m.underprovisionSeconds,
              sel: if c.kedastralSelector == '' then '' else '{%s}' % c.kedastralSelector,
              t: c.underprovisionedRatioThreshold,
            },
            'for': c.underprovisionedFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The ready pods of a workload scaled by Kedastral were too few.',
              description: 'Policy {{ $labels.policy }}: demand exceeded what the ready pods serve {{ $value | humanizePercentage }} of the last hour.',
            },
          },
        ],
      },
      {
        name: 'kedastral-scaler',
        rules: [
          {
            alert: 'KedastralScalerDown',
            expr: 'absent(up{%s} == 1)' % s,
            'for': c.scalerDownFor,
            labels: { severity: 'critical' },
            annotations: {
              summary: 'The Kedastral scaler is down.',
              description: 'No Kedastral scaler target has been up for %s: KEDA gets no predictive answers and falls back.' % c.scalerDownFor,
            },
          },
          {
            alert: 'KedastralScalerErrors',
            expr: |||
              sum by (job, instance, method) (rate(%(requests)s{%(s)s, code!="OK"}[5m]))
                /
              sum by (job, instance, method) (rate(%(requests)s{%(s)s}[5m]))
                > %(threshold)s
            ||| % { requests: m.scalerRequests, s: s, threshold: c.scalerErrorRatio },
            'for': c.scalerErrorsFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The Kedastral scaler answers KEDA with errors.',
              description: 'Scaler {{ $labels.instance }} answered {{ $value | humanizePercentage }} of {{ $labels.method }} requests with an error.',
            },
          },
          {
            alert: 'KedastralScalerStaleAnswers',
            expr: 'sum by (job, instance, %(p)s, outcome) (rate(%(stale)s{%(s)s}[5m])) > 0' % { stale: m.scalerStaleAnswers, s: s, p: p },
            'for': c.scalerStaleFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The Kedastral scaler finds the forecast stale.',
              description: 'Scaler {{ $labels.instance }} finds the forecast of policy {{ $labels.policy }} stale or missing and answers KEDA with outcome {{ $labels.outcome }}.',
            },
          },
          {
            alert: 'KedastralScalerPrometheusErrors',
            expr: |||
              sum by (job, instance) (rate(%(errors)s{%(s)s}[5m]))
                /
              sum by (job, instance) (rate(%(queries)s{%(s)s}[5m]))
                > %(threshold)s
            ||| % { errors: m.scalerPrometheusQueryErrors, queries: m.scalerPrometheusQueries, s: s, threshold: c.scalerPrometheusErrorRatio },
            'for': c.scalerErrorsFor,
            labels: { severity: 'warning' },
            annotations: {
              summary: 'The Kedastral scaler cannot query Prometheus.',
              description: 'Scaler {{ $labels.instance }}: {{ $value | humanizePercentage }} of its queries to Prometheus fail.',
            },
          },
        ],
      },
    ],
  },
}
