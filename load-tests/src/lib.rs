//! Load generator, end-to-end harness and reports for the pipeline's throughput targets.
//! Not built yet.
