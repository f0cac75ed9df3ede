/** A short-lived worker that measures the ML backends at join, where tasks will run them (in workers). */
import * as Comlink from 'comlink'
import { timeTfjsBackends } from './ml.js'

const api = { timeTfjsBackends }
export type ProbeWorkerApi = typeof api
Comlink.expose(api)
