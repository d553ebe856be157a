"""Reports and dashboards built from a study's results dataset."""
