// A small dashboard builder: plain Grafana JSON (schema 39), no external library, so the
// mixin vendors with no dependencies.
local datasource = { type: 'prometheus', uid: '${datasource}' };

{
  datasource:: datasource,

  // A Prometheus target. Every target names the datasource variable.
  target(expr, legend='', instant=false):: {
    datasource: datasource,
    expr: expr,
    legendFormat: legend,
    [if instant then 'instant']: true,
    [if instant then 'range']: false,
  },

  local panel(type, title, description, unit, targets) = {
    type: type,
    title: title,
    description: description,
    datasource: datasource,
    targets: [
      t { refId: std.char(std.codepoint('A') + i) }
      for i in std.range(0, std.length(targets) - 1)
      for t in [targets[i]]
    ],
    fieldConfig: { defaults: { unit: unit }, overrides: [] },
  },

  timeseries(title, description, unit, targets, stack=false, min=null, max=null):: panel('timeseries', title, description, unit, targets) {
    fieldConfig+: {
      defaults+: {
        [if min != null then 'min']: min,
        [if max != null then 'max']: max,
        custom: {
          drawStyle: 'line',
          lineWidth: 1,
          fillOpacity: if stack then 20 else 0,
          showPoints: 'never',
          stacking: { mode: if stack then 'normal' else 'none' },
        },
      },
    },
    options: {
      legend: { displayMode: 'table', placement: 'bottom', calcs: ['lastNotNull', 'max'] },
      tooltip: { mode: 'multi', sort: 'desc' },
    },
  },

  stat(title, description, unit, targets):: panel('stat', title, description, unit, targets) {
    options: {
      reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
      colorMode: 'value',
      graphMode: 'none',
      textMode: 'auto',
    },
  },

  table(title, description, unit, targets):: panel('table', title, description, unit, [t { format: 'table' } for t in targets]) {
    options: { showHeader: true },
    transformations: [{ id: 'merge', options: {} }],
  },

  row(title):: { type: 'row', title: title, collapsed: false, panels: [] },

  // layout places rows of panels on a 24-column grid: each element of rows is a list of
  // panels (or a row panel alone) that share one line; panel ids are assigned in order.
  layout(rows, height=8)::
    local place(acc, line) =
      local y = acc.y;
      local isRow = std.length(line) == 1 && line[0].type == 'row';
      local h = if isRow then 1 else height;
      local w = std.floor(24 / std.length(line));
      {
        y: y + h,
        panels: acc.panels + [
          line[i] {
            id: std.length(acc.panels) + i + 1,
            gridPos: { x: i * w, y: y, w: if isRow then 24 else w, h: h },
          }
          for i in std.range(0, std.length(line) - 1)
        ],
      };
    std.foldl(place, rows, { y: 0, panels: [] }).panels,

  // Template variables.
  datasourceVariable(c):: {
    name: 'datasource',
    label: 'Data source',
    type: 'datasource',
    query: 'prometheus',
    regex: c.datasourceRegex,
    current: { text: c.datasourceName, value: c.datasourceName },
    hide: 0,
  },

  queryVariable(name, label, query, multi=false, includeAll=false, hide=0, allValue='.+'):: {
    name: name,
    label: label,
    type: 'query',
    datasource: datasource,
    query: { query: query, refId: 'PrometheusVariableQueryEditor-VariableQuery' },
    definition: query,
    refresh: 2,
    sort: 1,
    multi: multi,
    includeAll: includeAll,
    [if includeAll then 'allValue']: allValue,
    current: if includeAll then { text: 'All', value: '$__all' } else {},
    hide: hide,
  },

  // adhocVariable lets the user narrow every query by labels of their own, such as the
  // labels a policy's query fans out by (namespace, deployment, service...).
  adhocVariable(name, label):: {
    name: name,
    label: label,
    type: 'adhoc',
    datasource: datasource,
    filters: [],
    hide: 0,
  },

  // dashboard builds a dashboard whose uid is stable: the md5 of its file name.
  dashboard(c, file, title, description, variables, panels):: {
    uid: std.md5(file),
    title: c.dashboardNamePrefix + title,
    description: description,
    tags: c.dashboardTags,
    timezone: c.dashboardTimezone,
    refresh: c.dashboardRefresh,
    time: { from: 'now-6h', to: 'now' },
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    templating: { list: variables },
    annotations: { list: [] },
    links: [{
      type: 'dashboards',
      title: 'Kedastral',
      tags: c.dashboardTags,
      asDropdown: true,
      includeVars: true,
      keepTime: true,
    }],
    panels: panels,
  },
}
