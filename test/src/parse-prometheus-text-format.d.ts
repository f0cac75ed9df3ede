/** parse-prometheus-text-format ships no types. Its samples' values are strings; a labelled histogram's series are merged into one (read those lines directly). */
declare module 'parse-prometheus-text-format' {
  export interface PrometheusFamily {
    name: string
    help: string
    type: 'COUNTER' | 'GAUGE' | 'HISTOGRAM' | 'SUMMARY' | 'UNTYPED'
    metrics: ({ value: string; labels?: Record<string, string> } | { buckets: Record<string, string>; count?: string; sum?: string; labels?: Record<string, string> })[]
  }
  /** Throws (InvalidLineError) on a line that is not Prometheus text. */
  export default function parsePrometheusTextFormat(text: string): PrometheusFamily[]
}
