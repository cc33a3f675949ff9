{
  _config+:: {
    // Selectors are inserted between {} in the queries, e.g. job="kedastral-forecaster".
    // The forecaster's and the scaler's own /metrics, as your Prometheus scrapes them.
    forecasterSelector: 'job="kedastral-forecaster"',
    scalerSelector: 'job="kedastral-scaler"',
    // The kedastral_* series the forecaster remote-writes (observed, predicted, desired
    // replicas, capacity per replica). They carry no job label; narrow them here, e.g.
    // cluster="prod". Empty selects all.
    kedastralSelector: '',
    // kube-state-metrics, for the actual replica counts on the policy dashboard.
    kubeStateMetricsSelector: 'job="kube-state-metrics"',

    // The label that names the policy on every Kedastral series.
    policyLabel: 'policy',
    // The label that names a ForecastPolicy's namespace when the forecaster reads policies
    // from the Kubernetes API (absent for policy files). The recording rules group and join
    // by it too, so two namespaces' policies of the same name stay apart; '' to leave it out.
    policyNamespaceLabel: 'policy_namespace',
    // The label that names the source of a policy with several (on observed and predicted
    // values and on the capacity per replica).
    sourceLabel: 'source',

    // The `ahead` values the accuracy recording rules compare against the observed value.
    // Each needs `ahead: [...]` in the policies; an `ahead` missing here has no accuracy series.
    accuracyAheads: ['5m', '15m', '30m'],
    // The windows of the accuracy and under-provisioning recording rules.
    accuracyWindows: ['1h', '1d'],

    // Metric names, in one place so that they follow the binaries if they are renamed.
    metrics: {
      observed: 'kedastral_observed_value',
      predicted: 'kedastral_predicted_value',
      desired: 'kedastral_desired_replicas',
      // The capacity one replica serves (the policy's capacity.targetPerPod, or each
      // source's targetPerPod), written by the forecaster next to kedastral_desired_replicas.
      capacityPerReplica: 'kedastral_capacity_per_replica',

      forecasterCycles: 'kedastral_forecaster_cycles_total',
      forecasterCycleFailures: 'kedastral_forecaster_cycle_failures_total',
      forecasterCycleDuration: 'kedastral_forecaster_cycle_duration_seconds',
      forecasterMissedCycles: 'kedastral_forecaster_missed_cycles_total',
      forecasterSeries: 'kedastral_forecaster_series',
      forecasterSeriesByModel: 'kedastral_forecaster_series_by_model',
      underprovisionSeconds: 'kedastral_underprovision_seconds_total',
      forecasterSeriesFailures: 'kedastral_forecaster_series_failures_total',
      forecasterQueryDuration: 'kedastral_forecaster_query_duration_seconds',
      forecasterLastSuccess: 'kedastral_forecaster_last_success_timestamp_seconds',
      forecasterPolicies: 'kedastral_forecaster_policies',
      forecasterPoliciesInvalid: 'kedastral_forecaster_policies_invalid',
      forecasterConfigReloadSuccessful: 'kedastral_forecaster_config_last_reload_successful',
      forecastAge: 'kedastral_forecast_age_seconds',
      remoteWriteSamples: 'kedastral_remote_write_samples_total',
      remoteWriteSamplesFailed: 'kedastral_remote_write_samples_failed_total',
      remoteWriteDuration: 'kedastral_remote_write_duration_seconds',
      buildInfo: 'kedastral_build_info',

      scalerRequests: 'kedastral_scaler_requests_total',
      scalerRequestDuration: 'kedastral_scaler_request_duration_seconds',
      scalerDesiredReplicas: 'kedastral_scaler_desired_replicas',
      scalerAnswers: 'kedastral_scaler_answers_total',
      scalerStaleAnswers: 'kedastral_scaler_stale_answers_total',
      scalerForecastAge: 'kedastral_scaler_forecast_age_seconds',
      scalerPrometheusQueries: 'kedastral_scaler_prometheus_queries_total',
      scalerPrometheusQueryErrors: 'kedastral_scaler_prometheus_query_errors_total',

      forecasterPolicyInfo: 'kedastral_forecaster_policy_info',

      kubeReplicasAvailable: 'kube_deployment_status_replicas_available',
      kubeReplicasSpec: 'kube_deployment_spec_replicas',
      kubeReplicasReady: 'kube_deployment_status_replicas_ready',
      kubeStatefulSetReplicasSpec: 'kube_statefulset_replicas',
      kubeStatefulSetReplicasReady: 'kube_statefulset_status_replicas_ready',
    },

    // Alert thresholds.
    forecasterDownFor: '15m',
    scalerDownFor: '15m',
    forecastStaleSeconds: 600,  // kedastral_forecast_age_seconds above this is stale.
    forecastStaleFor: '5m',
    remoteWriteFailureRatio: 0.05,  // share of samples whose remote write failed
    remoteWriteFailingFor: '15m',
    forecastErrorAhead: '15m',  // the ahead KedastralForecastErrorHigh watches
    forecastErrorRelativeThreshold: 0.5,  // relative error over 1h
    forecastErrorFor: '1h',
    underprovisionedRatioThreshold: 0.1,  // share of the last hour under-provisioned
    underprovisionedFor: '30m',
    scalerErrorRatio: 0.05,  // share of gRPC requests answered with an error
    scalerErrorsFor: '10m',
    scalerStaleFor: '10m',
    scalerPrometheusErrorRatio: 0.1,
    policiesInvalidFor: '5m',

    // Every alert links to runbookURLPattern % its name (lib/add-runbook-links.libsonnet).
    runbookURLPattern: 'https://github.com/kedastral/kedastral/blob/main/mixins/kedastral/runbook.md#%s',

    // Grafana.
    datasourceName: 'default',  // the datasource variable's default
    datasourceRegex: '',
    dashboardNamePrefix: 'Kedastral / ',
    dashboardTags: ['kedastral'],
    dashboardRefresh: '30s',
    dashboardTimezone: 'utc',
  },
}
