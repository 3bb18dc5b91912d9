//! Reading what a process exposes about itself: Prometheus samples off a
//! `/metrics` page.

/// GETs `http://{addr}/metrics`.
pub async fn scrape(addr: &str) -> anyhow::Result<String> {
    let response = reqwest::get(format!("http://{addr}/metrics")).await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{addr}/metrics answered {}",
        response.status()
    );
    Ok(response.text().await?)
}

/// The value of the sample `name` whose labels include every pair of
/// `labels`, if the exposition has one.
pub fn sample(exposition: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    exposition.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(rest) => rest.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        let all = labels.iter().all(|(k, v)| {
            label_text
                .split(',')
                .any(|pair| pair == format!("{k}=\"{v}\""))
        });
        all.then(|| value.split(' ').next()?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_found_by_name_and_labels() {
        let text = "# TYPE x counter\nx_total{a=\"1\",b=\"2\"} 3\nx_total{a=\"9\"} 4\ny 5.5\n";
        assert_eq!(sample(text, "x_total", &[("b", "2")]), Some(3.0));
        assert_eq!(sample(text, "x_total", &[("a", "9")]), Some(4.0));
        assert_eq!(sample(text, "y", &[]), Some(5.5));
        assert_eq!(sample(text, "x_total", &[("a", "2")]), None);
    }
}
