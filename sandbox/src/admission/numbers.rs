//! Numbers as kube-apiserver stores them: it decodes a custom resource's numbers as Go's
//! `float64` or `int64` and encodes a `float64` with no fraction without one, so `2.0` sent in
//! an integer field (a template rendering `{{ div 4 2 }}`, say) is stored and read back as `2`.

use serde_json::Value;

/// The largest magnitude below which Go prints a `float64` in plain digits (and which an `i64`
/// holds exactly).
const PLAIN_DIGITS: f64 = 9.007_199_254_740_992e15;

/// Rewrites every whole-number float in `value` as an integer.
pub(super) fn integral_floats_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            if let Some(f) = n.as_f64()
                && f.fract() == 0.0
                && f.abs() <= PLAIN_DIGITS
            {
                *value = Value::from(f as i64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_as_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_as_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn whole_floats_become_integers_and_fractions_stay() {
        let mut value = json!({"a": 2.0, "b": [1.5, -3.0], "c": {"d": 7}, "e": "2.0"});
        integral_floats_as_integers(&mut value);
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"a":2,"b":[1.5,-3],"c":{"d":7},"e":"2.0"}"#
        );
    }
}
