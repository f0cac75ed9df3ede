/** A short-lived worker that measures the ML backends at join, where tasks will run them (in workers). */
import * as Comlink from 'comlink'
import { timeOrtBackends, timeTfjsBackends } from './ml.js'

const api = { timeTfjsBackends, timeOrtBackends }
export type ProbeWorkerApi = typeof api
Comlink.expose(api)
