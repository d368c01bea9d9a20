//! The report's PNG: stage throughput over the whole run (top) and latency
//! percentiles per fixed rate (bottom, log scale), drawn with plotters'
//! bitmap backend and the built-in pixel font (no system fonts needed).

use super::glyphs;
use super::pipeline::RateRun;
use super::sampler::{rates, Sample};
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 900;
const STAGE_COLORS: [RGBColor; 4] = [RED, BLUE, GREEN, MAGENTA];
const OUTCOME: RGBColor = RGBColor(230, 120, 20);
const ROW: RGBColor = RGBColor(40, 90, 200);
const TEXT: u32 = 3;

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Draws the plot; returns the legend text the Markdown summary prints.
pub fn draw(path: &Path, samples: &[Sample], stages: &[&str], runs: &[RateRun]) -> Result<String> {
    let root = BitMapBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let (top, bottom) = root.split_vertically(HEIGHT / 2);
    throughput(&top, samples, stages, runs)?;
    latency(&bottom, runs)?;
    root.present().map_err(plot_error)?;
    Ok(format!(
        "`{}`: top, committed records/s of each stage (consumer-group offsets sampled every 0.5 s) over the \
         whole pipeline run: the flat-out throughput run, then each fixed rate (grey lines mark their starts). \
         Bottom, latency per fixed rate on a log scale: orange bars are command -> outcome p50/p95/p99, \
         blue bars command -> read-model row p50/p95/p99, in ms.",
        path.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned())
    ))
}

fn throughput(area: &Area, samples: &[Sample], stages: &[&str], runs: &[RateRun]) -> Result<()> {
    let series: Vec<Vec<(f64, f64)>> = (0..stages.len()).map(|i| rates(samples, i)).collect();
    let t_max = samples.last().map_or(1.0, |s| s.t_s).max(1.0);
    let y_max = series.iter().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .margin_left(90)
        .margin_right(20)
        .margin_top(40)
        .margin_bottom(40)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(plot_error)?;
    let y_step = nice_step(y_max / 6.0);
    let x_step = nice_step(t_max / 10.0);
    grid(&mut chart, (t_max, x_step), (y_max, y_step))?;
    for run in runs {
        let start = [(run.started_s, 0.0), (run.started_s, y_max)];
        chart
            .draw_series(LineSeries::new(start, BLACK.mix(0.3)))
            .map_err(plot_error)?;
    }
    for (i, points) in series.into_iter().enumerate() {
        let color = STAGE_COLORS[i % STAGE_COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(plot_error)?;
    }
    for tick in ticks(y_max, y_step) {
        let (x, y) = local(area, chart.backend_coord(&(0.0, tick)));
        label_right_aligned(area, x - 6, y - 7, &compact(tick))?;
    }
    for tick in ticks(t_max, x_step) {
        let (x, y) = local(area, chart.backend_coord(&(tick, 0.0)));
        label(area, x - 6, y + 8, &format!("{tick:.0}"), BLACK)?;
    }
    label(area, 90, 10, "RECORDS/S PER STAGE OVER TIME (S)", BLACK)?;
    let mut x = 620;
    for (i, name) in stages.iter().enumerate() {
        let color = STAGE_COLORS[i % STAGE_COLORS.len()];
        area.draw(&Rectangle::new([(x, 10), (x + 16, 24)], color.filled()))
            .map_err(plot_error)?;
        label(area, x + 22, 10, name, BLACK)?;
        x += 30 + glyphs::width(name) * TEXT as i32;
    }
    Ok(())
}

fn latency(area: &Area, runs: &[RateRun]) -> Result<()> {
    let bars: Vec<[f64; 6]> = runs
        .iter()
        .map(|r| {
            let (o, w) = (&r.command_to_outcome, &r.command_to_row);
            [o.p50_ms, o.p95_ms, o.p99_ms, w.p50_ms, w.p95_ms, w.p99_ms]
        })
        .collect();
    let y_max = bars.iter().flatten().copied().fold(1.0, f64::max) * 2.0;
    let slots = (runs.len() * 7).max(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .margin_left(90)
        .margin_right(20)
        .margin_top(40)
        .margin_bottom(40)
        .build_cartesian_2d(0.0..slots, (0.1..y_max).log_scale())
        .map_err(plot_error)?;
    let mut decade = 0.1;
    while decade <= y_max {
        chart
            .draw_series(LineSeries::new(
                [(0.0, decade), (slots, decade)],
                BLACK.mix(0.15),
            ))
            .map_err(plot_error)?;
        let (x, y) = local(area, chart.backend_coord(&(0.0, decade)));
        label_right_aligned(area, x - 6, y - 7, &compact(decade))?;
        decade *= 10.0;
    }
    for (i, values) in bars.iter().enumerate() {
        for (j, value) in values.iter().enumerate() {
            let x = (i * 7 + j) as f64 + 0.5;
            let color = if j < 3 { OUTCOME } else { ROW };
            let shade = color.mix(0.45 + 0.25 * (j % 3) as f64);
            let bar = Rectangle::new([(x, 0.1), (x + 0.9, value.max(0.1))], shade.filled());
            chart.draw_series([bar]).map_err(plot_error)?;
        }
        let (x, y) = local(area, chart.backend_coord(&((i * 7) as f64 + 0.5, 0.1)));
        label(
            area,
            x,
            y + 8,
            &format!("{:.0}/S", runs[i].target_rate),
            BLACK,
        )?;
    }
    label(
        area,
        90,
        10,
        "LATENCY MS (LOG) PER RATE: P50 P95 P99",
        BLACK,
    )?;
    area.draw(&Rectangle::new([(560, 10), (576, 24)], OUTCOME.filled()))
        .map_err(plot_error)?;
    label(area, 582, 10, "COMMAND->OUTCOME", BLACK)?;
    area.draw(&Rectangle::new([(820, 10), (836, 24)], ROW.filled()))
        .map_err(plot_error)?;
    label(area, 842, 10, "COMMAND->ROW", BLACK)?;
    Ok(())
}

fn grid<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    (x_max, x_step): (f64, f64),
    (y_max, y_step): (f64, f64),
) -> Result<()> {
    for y in ticks(y_max, y_step) {
        chart
            .draw_series(LineSeries::new([(0.0, y), (x_max, y)], BLACK.mix(0.15)))
            .map_err(plot_error)?;
    }
    for x in ticks(x_max, x_step) {
        chart
            .draw_series(LineSeries::new([(x, 0.0), (x, y_max)], BLACK.mix(0.08)))
            .map_err(plot_error)?;
    }
    Ok(())
}

fn ticks(max: f64, step: f64) -> Vec<f64> {
    (0..=((max / step) as usize))
        .map(|n| n as f64 * step)
        .collect()
}

/// 1, 2 or 5 times a power of ten, at least `raw`.
fn nice_step(raw: f64) -> f64 {
    let power = 10f64.powf(raw.max(1e-9).log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(power * 10.0)
}

/// 1500 -> "1.5K", 2000000 -> "2M", 0.1 -> "0.1".
fn compact(value: f64) -> String {
    let trim = |v: f64| {
        let text = format!("{v:.1}");
        text.strip_suffix(".0").map_or(text.clone(), str::to_owned)
    };
    match value {
        v if v >= 1e6 => format!("{}M", trim(v / 1e6)),
        v if v >= 1e3 => format!("{}K", trim(v / 1e3)),
        v => trim(v),
    }
}

/// A chart's point in `area`'s own pixels (charts map to the whole image's).
fn local(area: &Area, (x, y): (i32, i32)) -> (i32, i32) {
    let (left, top) = area.get_base_pixel();
    (x - left, y - top)
}

fn label(area: &Area, x: i32, y: i32, text: &str, color: RGBColor) -> Result<()> {
    let s = TEXT as i32;
    for (col, row) in glyphs::pixels(text) {
        let at = (x + col * s, y + row * s);
        area.draw(&Rectangle::new(
            [at, (at.0 + s - 1, at.1 + s - 1)],
            color.filled(),
        ))
        .map_err(plot_error)?;
    }
    Ok(())
}

fn label_right_aligned(area: &Area, right: i32, y: i32, text: &str) -> Result<()> {
    label(
        area,
        right - glyphs::width(text) * TEXT as i32,
        y,
        text,
        BLACK,
    )
}

fn plot_error<E: std::fmt::Display>(error: E) -> anyhow::Error {
    anyhow!("plot: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_and_labels_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1_300.0), 2_000.0);
        assert_eq!(nice_step(4_100.0), 5_000.0);
        assert_eq!(compact(1_500.0), "1.5K");
        assert_eq!(compact(2_000_000.0), "2M");
        assert_eq!(compact(0.1), "0.1");
        assert_eq!(ticks(10.0, 5.0), vec![0.0, 5.0, 10.0]);
    }
}
