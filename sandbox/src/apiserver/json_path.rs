//! The JSONPath subset CRD printer columns use, as kube-apiserver evaluates it for `Table`
//! output.

use serde_json::Value;

/// Evaluates the JSONPath subset printer columns use: `.a.b`, `.a[0]`, `.a[*].b` and
/// `.a[?(@.k=="v")].b`.
pub fn json_path(object: &Value, path: &str) -> Vec<Value> {
    let mut current = vec![object.clone()];
    let mut rest = path
        .trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim_start_matches('.');
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let Some(close) = after.find(']') else {
                return vec![];
            };
            let selector = &after[..close];
            rest = after[close + 1..].trim_start_matches('.');
            current = current
                .into_iter()
                .flat_map(|v| {
                    let items = v.as_array().cloned().unwrap_or_default();
                    if selector == "*" {
                        items
                    } else if let Ok(i) = selector.parse::<usize>() {
                        items.get(i).cloned().into_iter().collect()
                    } else if let Some(filter) = selector
                        .strip_prefix("?(@.")
                        .and_then(|f| f.strip_suffix(')'))
                    {
                        let (key, expected) = filter.split_once("==").unwrap_or((filter, ""));
                        let expected = expected.trim().trim_matches('"').trim_matches('\'');
                        items
                            .into_iter()
                            .filter(|item| {
                                item.get(key.trim()).and_then(Value::as_str) == Some(expected)
                            })
                            .collect()
                    } else {
                        vec![]
                    }
                })
                .collect();
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            rest = rest[end..].trim_start_matches('.');
            current = current
                .into_iter()
                .filter_map(|v| v.get(key).cloned())
                .collect();
        }
    }
    current
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_paths() {
        let object = json!({"status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}, "spec": {"skus": ["A", "B"]}});
        assert_eq!(
            json_path(&object, ".status.conditions[?(@.type==\"Ready\")].status"),
            vec![json!("True")]
        );
        assert_eq!(json_path(&object, ".spec.skus"), vec![json!(["A", "B"])]);
        assert_eq!(json_path(&object, ".spec.skus[1]"), vec![json!("B")]);
        assert!(json_path(&object, ".spec.missing").is_empty());
    }
}
