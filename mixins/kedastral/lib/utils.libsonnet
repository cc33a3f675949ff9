{
  // mapRuleGroups returns an override that applies f to every rule of every group.
  mapRuleGroups(f): {
    groups: [
      group { rules: [f(rule) for rule in super.rules] }
      for group in super.groups
    ],
  },
}
