"""The Helm chart through Helm's own Go library (the helm-python-sdk wheel).

Usage: chart.py lint CHART VALUES_JSON
       chart.py render CHART VALUES_JSON RELEASE NAMESPACE

Prints one JSON document: lint findings, or the rendered templates by path. A render that
Helm refuses (values.schema.json, a `required` value) prints {"error": "..."} and exits 1.
"""

import json
import sys

import helm_python


def main() -> int:
    mode, chart, values = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    if mode == "lint":
        result = helm_python.lint(chart, values)
        print(json.dumps(result, default=str))
        return 0
    if mode == "render":
        release, namespace = sys.argv[4], sys.argv[5]
        loaded = helm_python.Chart.load(chart)
        try:
            rendered = loaded.render(values, name=release, namespace=namespace, is_install=True)
        except helm_python.HelmError as error:
            print(json.dumps({"error": str(error)}))
            return 1
        # The chart's crds/ as Helm loaded them (installed before the templates, never templated).
        crds = {crd["name"]: crd["data"] for crd in loaded.crds}
        print(json.dumps({"templates": rendered, "crds": crds}, default=str))
        return 0
    print(json.dumps({"error": f"unknown mode {mode}"}))
    return 2


if __name__ == "__main__":
    sys.exit(main())
