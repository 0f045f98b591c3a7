"""Reading finished runs back: what the experiment scripts share.

* :mod:`marl.analysis.reliable`: means and interquartile means with stratified-bootstrap
  95% intervals, the difference of two means and the probability of improvement (what
  ``python -m marl.report`` and every results table compute);
* :mod:`marl.analysis.runs`: run directories (``.hydra/config.yaml``, ``metrics.jsonl``,
  ``summary.json``) read into records, merged with an earlier ``results.json``, grouped
  by experiment and algorithm;
* :mod:`marl.analysis.tables`: the results tables (per algorithm, per run, one algorithm
  against the others) and Markdown;
* :mod:`marl.analysis.curves`: learning curves of several runs (mean and 95% band);
* :mod:`marl.analysis.report`: a sweep's ``results.md`` / ``results.json`` / curves;
* :mod:`marl.analysis.failures`: what a trained box-pushing policy does in the episodes
  it loses;
* :mod:`marl.analysis.matrix`: train on a matrix game and read the converged joint action;
* :mod:`marl.analysis.coordination`: where training episodes could play a joint plan (the
  strict box's joint push, Dec-Tiger's joint open), whether they did, and the critic's
  values and COMA's advantages of the plan there.
"""
