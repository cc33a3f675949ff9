// Template variables shared by the dashboards.
local d = import '../lib/dashboard.libsonnet';

{
  datasource(c):: d.datasourceVariable(c),
  job(c):: d.queryVariable('job', 'Job', 'label_values(%s, job)' % c.metrics.buildInfo, multi=true, includeAll=true),
  instance(c):: d.queryVariable('instance', 'Instance', 'label_values(%s{job=~"$job"}, instance)' % c.metrics.buildInfo, multi=true, includeAll=true),
}
