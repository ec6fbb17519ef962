/**
 * The diagrams of the machines, generated from the machines themselves (machines/introspect.ts) and
 * never written by hand: Mermaid stateDiagram-v2, which GitHub renders; Graphviz DOT; and SVG,
 * rendered from the DOT by @viz-js/viz (Graphviz compiled to WASM, so the bytes do not depend on
 * the machine's fonts or Graphviz version). The overview shows the composed system: the three
 * machines, the messages compose.ts routes between them, and the events that come from the host.
 *
 * How a transition reads, in every format:
 *   EVENT [guard] / effect, effect +N more
 * - `always` is an eventless transition, taken as soon as its source state is entered;
 * - `after timeout client` is the handshake deadline: the session's TASK_WAKEUP woken by the
 *   timer (guard wokenByTimer). In 2.9 the deadline is `timeout client-hs` when it is set;
 * - `[else]` is an unguarded candidate after guarded ones: it is taken when they all fail;
 * - long effect lists keep the effects that matter to the other machines and to a porter (the
 *   messages, the deadline, the buffers, the listener's socket, the log line) and count the rest
 *   ("+8 more"); PORTING.md lists them all.
 * Compound states are Mermaid `state X { }` blocks and DOT clusters. States passed through within
 * one step (they only have eventless transitions) are grey; final states have a double border.
 */
import { instance, type Viz } from '@viz-js/viz';
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { MACHINES, messagesFor, NO_FAILURE, type Host, type MachineName } from '../machines/compose.ts';
import { EFFECTS, type Effect, type EffectName } from '../machines/effects.ts';
import {
  actionName,
  listStates,
  listTransitions,
  type StateInfo,
  type TransitionInfo,
} from '../machines/introspect.ts';

/** The machines that get a diagram each, in the order the README shows them. */
export const MACHINE_NAMES: readonly MachineName[] = ['listener', 'connection', 'session'];

/** How the handshake deadline reads on the transition it triggers. */
export const DEADLINE = {
  event: 'TASK_WAKEUP',
  guard: 'wokenByTimer',
  reads: 'after timeout client',
} as const;

/**
 * Effects a diagram always shows when it abbreviates a long list, besides the messages between
 * machines: the ones that define the lifecycle for a porter (the deadline, the task handler, the
 * buffers, what is written to the client, the log line, the listener's socket).
 */
const KEY_EFFECTS: ReadonlySet<string> = new Set<EffectName>([
  'armDeadline',
  'taskSetHandler',
  'allocBuffers',
  'completeFailure',
  'logEmbryonicKill',
  'send200',
  'send500',
  'setNoLinger',
  'listenerStopAccepting',
  'listenerResumeAccepting',
  'scheduleQueueTask',
  'recvProxyHeader',
  'startTlsHandshake',
]);

/** A list of effects up to this length is shown whole. */
const SHOWN_WHOLE = 5;

/** What an edge says about its transition. */
export interface EdgeLabel {
  trigger: string; //   the event, `always`, or `after timeout client`
  guard: string | null; // the guard name, `else`, or null
  shown: string[]; //   the effects shown, in emission order
  omitted: number; //   how many more effects the transition emits
}

/** One message compose.ts routes: an effect of one machine delivered as an event to another. */
export interface MessageRoute {
  effect: EffectName;
  to: MachineName;
  event: string;
}

/** One generated file: its path from the repository root and its exact content. */
export interface GeneratedFile {
  path: string;
  content: string;
}

/** Styles a caller (the coverage variant) lays over the plain diagram. Absent fields keep the default. */
export interface DiagramStyle {
  edge?(t: TransitionInfo): { color?: string; style?: string; penwidth?: number; note?: string };
  state?(s: StateInfo): { color?: string; style?: string; penwidth?: number };
  title?: string; //                     the graph's title line, default the machine id
  mermaidClasses?: { name: string; style: string; states: string[] }[];
}

/**
 * Returns the label of transition `t` of `machine`: its trigger, its guard, and the effects it
 * makes the host execute (entry effects of the states it enters included), long lists abbreviated
 * as the module comment says. Pure; the same transition always gets the same label.
 */
export function transitionLabel(machine: AnyStateMachine, t: TransitionInfo): EdgeLabel {
  const deadline = t.event === DEADLINE.event && t.guard === DEADLINE.guard;
  const trigger = deadline ? DEADLINE.reads : t.event;
  const guard = deadline ? null : (t.guard ?? (t.rank > 0 ? 'else' : null));
  const actions = emittedActions(machine, t);
  if (actions.length <= SHOWN_WHOLE) return { trigger, guard, shown: actions, omitted: 0 };
  // Messages first, then the key effects, up to SHOWN_WHOLE; shown in emission order.
  const messages = messageEffects();
  const indices = actions.map((_, i) => i);
  const picked = [
    ...indices.filter((i) => messages.has(actions[i]!)),
    ...indices.filter((i) => !messages.has(actions[i]!) && KEY_EFFECTS.has(actions[i]!)),
  ].slice(0, SHOWN_WHOLE);
  const key = indices.filter((i) => picked.includes(i)).map((i) => actions[i]!);
  const shown = key.length > 0 ? key : actions.slice(0, 3);
  return { trigger, guard, shown, omitted: actions.length - shown.length };
}

/** Returns `label` on one line: `EVENT [guard] / a, b +3 more`. Pure. */
export function labelText(label: EdgeLabel): string {
  return [labelHead(label), labelEffects(label)].filter(Boolean).join(' ');
}

function labelHead(label: EdgeLabel): string {
  return label.guard ? `${label.trigger} [${label.guard}]` : label.trigger;
}

function labelEffects(label: EdgeLabel): string {
  if (label.shown.length === 0) return '';
  return `/ ${label.shown.join(', ')}${label.omitted > 0 ? ` +${label.omitted} more` : ''}`;
}

/** Returns the state node `id` of `machine`. Throws if there is none (a programmer error). */
export function stateNode(machine: AnyStateMachine, id: string): AnyStateNode {
  return machine.getStateNodeById(id) as AnyStateNode;
}

/** Returns the entry and exit effects of state `id` of `machine`, by name. Pure. */
export function stateActions(machine: AnyStateMachine, id: string): { entry: string[]; exit: string[] } {
  const node = stateNode(machine, id);
  return { entry: node.entry.map(actionName), exit: node.exit.map(actionName) };
}

/** Returns the id of the state `id` starts in: itself if atomic, else its initial leaf. Pure. */
export function initialLeaf(machine: AnyStateMachine, id: string): string {
  let node = stateNode(machine, id);
  while (node.type === 'compound') {
    const first = node.initial?.target?.[0] as AnyStateNode | undefined;
    if (!first) break;
    node = first;
  }
  return node.id;
}

/** Returns the id of the initial child of compound state `id` (or of the machine), or null. Pure. */
function initialChild(node: AnyStateNode): string | null {
  const first = node.initial?.target?.[0] as AnyStateNode | undefined;
  return first ? first.id : null;
}

/**
 * Returns the states transition `t` enters, outermost first: the target and its ancestors below
 * the least common ancestor with the source, then the initial states below a compound target.
 * Empty for a targetless transition. Pure.
 */
export function enteredStates(machine: AnyStateMachine, t: TransitionInfo): string[] {
  const out: string[] = [];
  for (const target of t.targets) {
    const chain = ancestry(target);
    const common = ancestry(t.source);
    for (const id of chain) if (!common.includes(id) && !out.includes(id)) out.push(id);
    let node = stateNode(machine, target);
    while (node.type === 'compound') {
      const next = initialChild(node);
      if (!next) break;
      if (!out.includes(next)) out.push(next);
      node = stateNode(machine, next);
    }
  }
  return out;
}

/**
 * Returns every effect transition `t` makes its host execute, by name: the exit effects of the
 * states it leaves, its own effects, then the entry effects of the states it enters (XState's
 * order; the active children of a compound source are not known statically and not counted).
 * Context updates (assign) are included; macros are not expanded. Pure.
 */
export function emittedActions(machine: AnyStateMachine, t: TransitionInfo): string[] {
  const entered = enteredStates(machine, t);
  const kept = t.targets.flatMap(ancestry);
  const exited =
    t.targets.length === 0
      ? []
      : ancestry(t.source)
          .filter((id) => !kept.includes(id))
          .reverse();
  return [
    ...exited.flatMap((id) => stateActions(machine, id).exit),
    ...t.actions,
    ...entered.flatMap((id) => stateActions(machine, id).entry),
  ];
}

/** Returns the ids of `id` and its ancestors below the machine root, outermost first. */
function ancestry(id: string): string[] {
  const parts = id.split('.');
  const out: string[] = [];
  for (let i = 2; i <= parts.length; i++) out.push(parts.slice(0, i).join('.'));
  return out;
}

// ------------------------------------------------------------------------------------------------
// The messages between machines, as compose.ts routes them.

let routesCache: MessageRoute[] | null = null;

/**
 * Returns every message compose.ts routes: for each effect of machines/effects.ts, the events
 * compose.ts's router (messagesFor, which Composition.dispatch calls for every effect in
 * MESSAGE_EFFECTS) delivers for it, and to which machine, so that the overview can never disagree
 * with the composition. Pure (deterministic, cached).
 */
export function messageRoutes(): MessageRoute[] {
  if (routesCache) return routesCache;
  const host: Pick<Host, 'gauges' | 'sslconns'> = {
    gauges: () => ({ nbconn: 0, actconn: 0, feconn: 0, connRateRemain: 1, sessRateRemain: 1 }),
    sslconns: () => 0,
  };
  const routes: MessageRoute[] = [];
  for (const name of Object.keys(EFFECTS) as EffectName[]) {
    const effect: Effect = { type: name, params: {} };
    for (const m of messagesFor(effect, { machine: 'session', conn: 0 }, NO_FAILURE, host, 0))
      routes.push({ effect: name, to: m.machine, event: m.event.type });
  }
  routesCache = routes;
  return routes;
}

/** The effects that are messages to another machine. */
function messageEffects(): Set<string> {
  return new Set(messageRoutes().map((r) => r.effect));
}

// ------------------------------------------------------------------------------------------------
// Mermaid

/** Words Mermaid's state diagram grammar reserves, which cannot be state ids. */
const MERMAID_RESERVED = new Set([
  'end',
  'state',
  'note',
  'class',
  'classDef',
  'direction',
  'style',
  'click',
]);

/**
 * Returns the Mermaid id of every state of `machine`: its key when no other state has it, else its
 * path below the root joined with `_` (shown with its key as the label). Pure.
 */
function mermaidIds(states: StateInfo[]): Map<string, string> {
  const keys = states.map((s) => s.path[s.path.length - 1]!);
  return new Map(
    states.map((s, i) => {
      const key = keys[i]!;
      const unique = keys.indexOf(key) === keys.lastIndexOf(key) && !MERMAID_RESERVED.has(key);
      return [s.id, unique ? key : s.path.join('_')];
    }),
  );
}

/** Replaces the characters Mermaid reads as syntax in a label with look-alikes. Pure. */
function mermaidText(text: string): string {
  return text.replace(/:/g, '꞉').replace(/;/g, ';').replace(/#/g, '＃').replace(/"/g, "'");
}

/**
 * Returns the Mermaid stateDiagram-v2 of `machine`: every state declared in its block (one
 * `state X { }` block per compound state), `[*]` for the initial and final states, and one line per transition of listTransitions (a
 * targetless one as a loop), placed in the innermost block that holds both its ends. `style` adds
 * notes to the labels and classes to the states (the coverage variant). Pure.
 */
export function toMermaid(machine: AnyStateMachine, style: DiagramStyle = {}): string {
  const states = listStates(machine);
  const ids = mermaidIds(states);
  const idOf = (stateId: string): string => ids.get(stateId)!;
  const edgesIn = new Map<string, string[]>(); // block state id ('' = root) → transition lines
  for (const t of listTransitions(machine)) {
    const note = style.edge?.(t).note;
    const text = mermaidText(labelText(transitionLabel(machine, t)) + (note ? ` (${note})` : ''));
    for (const target of t.targets.length > 0 ? t.targets : [t.source]) {
      const block = commonBlock(machine, t.source, target);
      const line = `${idOf(t.source)} --> ${idOf(target)} : ${text}`;
      edgesIn.set(block, [...(edgesIn.get(block) ?? []), line]);
    }
  }
  const lines: string[] = ['stateDiagram-v2', '  direction LR'];
  const emitBlock = (node: AnyStateNode, blockId: string, depth: number): void => {
    const pad = '  '.repeat(depth);
    const first = initialChild(node);
    if (first) lines.push(`${pad}[*] --> ${idOf(first)}`);
    for (const child of Object.values(node.states) as AnyStateNode[]) {
      const id = idOf(child.id);
      if (child.type === 'compound') {
        lines.push(`${pad}state ${id} {`);
        emitBlock(child, child.id, depth + 1);
        lines.push(`${pad}}`);
      } else lines.push(id === child.key ? `${pad}${id}` : `${pad}state "${child.key}" as ${id}`);
      if (child.type === 'final') lines.push(`${pad}${id} --> [*]`);
    }
    for (const line of edgesIn.get(blockId) ?? []) lines.push(`${pad}${line}`);
  };
  emitBlock(machine.root, '', 1);
  const classes = [
    {
      name: 'transient',
      style: 'fill:#eeeeee,stroke:#888888',
      states: states.filter((s) => s.transient).map((s) => s.id),
    },
    ...(style.mermaidClasses ?? []),
  ];
  for (const c of classes) {
    if (c.states.length === 0) continue;
    lines.push(`  classDef ${c.name} ${c.style}`);
    lines.push(`  class ${c.states.map(idOf).join(',')} ${c.name}`);
  }
  return lines.join('\n') + '\n';
}

/** Returns the id of the innermost compound state holding both `a` and `b` ('' for the root). */
function commonBlock(machine: AnyStateMachine, a: string, b: string): string {
  const pa = ancestry(a);
  const pb = ancestry(b);
  let block = '';
  for (let i = 0; i < Math.min(pa.length, pb.length); i++) {
    if (pa[i] !== pb[i]) break;
    if (pa[i] !== a && pa[i] !== b && stateNode(machine, pa[i]!).type === 'compound') block = pa[i]!;
  }
  return block;
}

// ------------------------------------------------------------------------------------------------
// Graphviz DOT

/** Returns `text` as a DOT double-quoted string. Pure. */
export function dotString(text: string): string {
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;
}

/** Splits `items` into lines of at most `width` characters (one item may exceed it), joined by `sep`. Pure. */
function wrap(items: string[], width: number, sep = ', '): string[] {
  const lines: string[] = [];
  let line = '';
  for (const item of items) {
    const next = line ? `${line}${sep}${item}` : item;
    if (line && next.length > width) {
      lines.push(line + sep.trimEnd());
      line = item;
    } else line = next;
  }
  if (line) lines.push(line);
  return lines;
}

/** Returns the multi-line DOT label of transition `t` of `machine`. Pure. */
function dotEdgeLabel(machine: AnyStateMachine, t: TransitionInfo, note?: string): string {
  const label = transitionLabel(machine, t);
  const effects = wrap(label.shown, 36);
  if (effects.length > 0) effects[0] = `/ ${effects[0]}`;
  if (label.omitted > 0) effects.push(`+${label.omitted} more`);
  return [labelHead(label), ...effects, ...(note ? [note] : [])].join('\n');
}

const GRAPH_FONT = 'Helvetica';

/** An HTML-like Graphviz label, written `<...>` instead of `"..."`. */
interface Html {
  html: string;
}

/** Returns a DOT attribute list ` [a="x", b=2]` (empty if none), leaving out the undefined values. */
function attrs(list: Record<string, string | number | Html | undefined>): string {
  const parts = Object.entries(list)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => {
      if (typeof v === 'number') return `${k}=${v}`;
      if (typeof v === 'object') return `${k}=<${v.html}>`;
      return `${k}=${dotString(v!)}`;
    });
  return parts.length === 0 ? '' : ` [${parts.join(', ')}]`;
}

/** Returns `text` escaped for an HTML-like Graphviz label. Pure. */
function htmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * Returns the label of a state that lists its targetless (internal) transitions, UML style: the
 * name, its entry/exit effects, then one row per internal transition, each with the transition's
 * id and description as its own id and tooltip, and the colour `style` gives it. Pure.
 */
function stateHtmlLabel(
  machine: AnyStateMachine,
  lines: string[],
  internal: TransitionInfo[],
  style: DiagramStyle,
): Html {
  const rows = lines.map((l, i) => `<TR><TD${i === 0 ? '' : ' ALIGN="LEFT"'}>${htmlText(l)}</TD></TR>`);
  const internalRows = internal.map((t) => {
    const over = style.edge?.(t) ?? {};
    const text = labelText(transitionLabel(machine, t)) + (over.note ? ` (${over.note})` : '');
    const cell = over.color ? `<FONT COLOR="${over.color}">${htmlText(text)}</FONT>` : htmlText(text);
    const tip = htmlText(`${t.id}: ${t.description}`);
    return `<TR><TD ALIGN="LEFT" ID="edge:${htmlText(t.id)}" TOOLTIP="${tip}" HREF="#"><FONT POINT-SIZE="9">${cell}</FONT></TD></TR>`;
  });
  const body = [...rows, ...(internalRows.length > 0 ? ['<HR/>', ...internalRows] : [])].join('');
  return { html: `<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="2">${body}</TABLE>` };
}

/**
 * Returns the Graphviz DOT of `machine`: compound states as clusters, a point for each initial
 * state, one edge per transition (and target) of listTransitions with the transition's id and
 * description as its tooltip, except targetless transitions, which change no state and are
 * listed inside their state (UML's internal transitions) rather than drawn as loops. An edge to or
 * from a compound state ends on the cluster (lhead, ltail). `style` lays colours over it (the
 * coverage variant). Pure.
 */
export function toDot(machine: AnyStateMachine, style: DiagramStyle = {}): string {
  const states = listStates(machine);
  const transitions = listTransitions(machine);
  const font = GRAPH_FONT;
  const lines: string[] = [
    `digraph ${dotString(machine.id)} {`,
    `  graph${attrs({ rankdir: 'LR', compound: 'true', newrank: 'true', fontname: font, fontsize: 16, labelloc: 't', label: style.title ?? machine.id, tooltip: machine.root.description ?? machine.id, nodesep: 0.35, ranksep: 0.5 })};`,
    `  node${attrs({ shape: 'box', style: 'rounded', fontname: font, fontsize: 12, margin: '0.15,0.06' })};`,
    `  edge${attrs({ fontname: font, fontsize: 9, arrowsize: 0.7 })};`,
  ];
  const startOf = (id: string): string => `${id}.[*]`;
  const emitStates = (node: AnyStateNode, depth: number): void => {
    const pad = '  '.repeat(depth);
    if (initialChild(node))
      lines.push(
        `${pad}${dotString(startOf(node.id))}${attrs({ shape: 'point', width: 0.12, label: '', tooltip: 'initial state' })};`,
      );
    for (const child of Object.values(node.states) as AnyStateNode[]) {
      const info = states.find((s) => s.id === child.id)!;
      const tooltip = `${info.description}\nHAProxy: ${info.meta.haproxy}`;
      const over = style.state?.(info) ?? {};
      const { entry, exit } = stateActions(machine, child.id);
      const text = [
        child.key,
        ...(entry.length > 0 ? [`entry / ${entry.join(', ')}`] : []),
        ...(exit.length > 0 ? [`exit / ${exit.join(', ')}`] : []),
      ];
      const internal = transitions.filter((t) => t.source === child.id && t.targets.length === 0);
      const label = internal.length > 0 ? stateHtmlLabel(machine, text, internal, style) : text.join('\n');
      if (child.type === 'compound') {
        lines.push(`${pad}subgraph ${dotString(`cluster_${child.id}`)} {`);
        lines.push(
          `${pad}  graph${attrs({ label, tooltip, style: over.style ?? 'rounded', color: over.color ?? '#555555', penwidth: over.penwidth, fontsize: 12 })};`,
        );
        emitStates(child, depth + 1);
        lines.push(`${pad}}`);
        continue;
      }
      const node = {
        label,
        tooltip,
        peripheries: child.type === 'final' ? 2 : undefined,
        style: over.style ?? (info.transient ? 'rounded,filled' : 'rounded'),
        fillcolor: info.transient ? '#eeeeee' : undefined,
        color: over.color,
        penwidth: over.penwidth,
      };
      lines.push(`${pad}${dotString(child.id)}${attrs(node)};`);
    }
  };
  emitStates(machine.root, 1);
  const cluster = (id: string): string | undefined =>
    stateNode(machine, id).type === 'compound' ? `cluster_${id}` : undefined;
  for (const node of [machine.root, ...states.map((s) => stateNode(machine, s.id))]) {
    const first = initialChild(node);
    if (!first) continue;
    const head = dotString(initialLeaf(machine, first));
    lines.push(`  ${dotString(startOf(node.id))} -> ${head}${attrs({ lhead: cluster(first) })};`);
  }
  for (const t of transitions) {
    const targets = t.targets;
    const over = style.edge?.(t) ?? {};
    for (const target of targets) {
      const edge = {
        label: dotEdgeLabel(machine, t, over.note),
        tooltip: `${t.id}: ${t.description}`,
        id: `edge:${t.id}${targets.length > 1 ? `:${target}` : ''}`,
        color: over.color,
        fontcolor: over.color,
        style: over.style,
        penwidth: over.penwidth,
        ltail: cluster(t.source),
        lhead: cluster(target),
      };
      const tail = dotString(initialLeaf(machine, t.source));
      const head = dotString(initialLeaf(machine, target));
      lines.push(`  ${tail} -> ${head}${attrs(edge)};`);
    }
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------
// The overview of the composed system

/** The node that stands for whatever sends the events no machine sends: I/O, timers, the stream. */
const HOST = 'host';

/** One edge of the overview: a message, or the events that come from the host. */
export interface OverviewEdge {
  from: MachineName | typeof HOST;
  to: MachineName;
  effect: string | null; // the message's effect; null for the host's events
  events: string[]; //    the events it arrives as
  emitters: string[]; // the transitions that emit the message (empty for the host's events)
}

/**
 * Returns the edges of the overview: one per message a machine emits that compose.ts routes
 * (effect → event, from the emitting machine to the receiving one), then one per machine for the
 * events no route produces, which come from the host. Pure.
 */
export function overviewEdges(): OverviewEdge[] {
  const routes = messageRoutes();
  const edges: OverviewEdge[] = [];
  for (const from of MACHINE_NAMES) {
    const machine = MACHINES[from];
    for (const route of routes) {
      const emitters = listTransitions(machine)
        .filter((t) => emittedActions(machine, t).includes(route.effect))
        .map((t) => t.id);
      if (emitters.length === 0) continue;
      edges.push({ from, to: route.to, effect: route.effect, events: [route.event], emitters });
    }
  }
  const routed = new Set(routes.map((r) => `${r.to}|${r.event}`));
  for (const to of MACHINE_NAMES) {
    const events: string[] = [];
    for (const t of listTransitions(MACHINES[to])) {
      if (t.event === 'always' || routed.has(`${to}|${t.event}`)) continue;
      const name = t.event === DEADLINE.event ? `${t.event} (${DEADLINE.reads})` : t.event;
      if (!events.includes(name)) events.push(name);
    }
    if (events.length > 0) edges.push({ from: HOST, to, effect: null, events, emitters: [] });
  }
  return edges;
}

/** Returns the top-level states of `name`, compound ones with their children: 'limited(a, b)'. */
function stateSummary(name: MachineName): string[] {
  const machine = MACHINES[name];
  const describeNode = (node: AnyStateNode): string => {
    const children = Object.values(node.states) as AnyStateNode[];
    return children.length === 0 ? node.key : `${node.key}(${children.map(describeNode).join(', ')})`;
  };
  return (Object.values(machine.root.states) as AnyStateNode[]).map(describeNode);
}

const HOST_LABEL = 'host: I/O, timers, process_session';

/** Returns the label lines of overview edge `e`, its parts joined with `arrow`. Pure. */
function overviewLabel(e: OverviewEdge, arrow: string, width: number): string[] {
  return e.effect === null ? wrap(e.events, width) : [`${e.effect} ${arrow} ${e.events.join(', ')}`];
}

/** Returns the Mermaid flowchart of the composed system. Pure. */
export function overviewMermaid(): string {
  const lines = ['flowchart LR'];
  lines.push(`  ${HOST}(["${HOST_LABEL}"])`);
  for (const name of MACHINE_NAMES) {
    const states = wrap(stateSummary(name), 48, ' · ').join('<br/>');
    lines.push(`  ${name}["<b>${name}</b><br/>${mermaidText(states)}"]`);
  }
  for (const e of overviewEdges()) {
    lines.push(`  ${e.from} -->|"${mermaidText(overviewLabel(e, '→', 48).join('<br/>'))}"| ${e.to}`);
  }
  lines.push('  classDef hostStyle stroke-dasharray:4 4');
  lines.push(`  class ${HOST} hostStyle`);
  return lines.join('\n') + '\n';
}

/**
 * Returns the Graphviz DOT of the composed system: the host and the three machines (with their
 * states) as nodes, one edge per message, one dashed edge per machine for the host's events.
 * Labels are ASCII, so that Graphviz can measure them. Pure.
 */
export function overviewDot(): string {
  const font = GRAPH_FONT;
  const lines = [
    'digraph "overview" {',
    `  graph${attrs({ rankdir: 'LR', fontname: font, fontsize: 16, labelloc: 't', label: 'the composed system: messages between the machines', nodesep: 0.5, ranksep: 1.2 })};`,
    `  node${attrs({ shape: 'box', style: 'rounded', fontname: font, fontsize: 12, margin: '0.2,0.1' })};`,
    `  edge${attrs({ fontname: font, fontsize: 9, arrowsize: 0.7 })};`,
    `  ${dotString(HOST)}${attrs({ label: HOST_LABEL.replace(': ', ':\n'), style: 'rounded,dashed', tooltip: 'whatever sends the events that no machine sends' })};`,
  ];
  for (const name of MACHINE_NAMES) {
    const label = [name, ...wrap(stateSummary(name), 40)].join('\n');
    const tooltip = MACHINES[name].root.description ?? name;
    lines.push(`  ${dotString(name)}${attrs({ label, tooltip, penwidth: 1.5 })};`);
  }
  for (const e of overviewEdges()) {
    const edge = {
      label: overviewLabel(e, '->', 30).join('\n'),
      tooltip:
        e.effect === null ? `from the host: ${e.events.join(', ')}` : `emitted by ${e.emitters.join(', ')}`,
      style: e.effect === null ? 'dashed' : undefined,
    };
    lines.push(`  ${dotString(e.from)} -> ${dotString(e.to)}${attrs(edge)};`);
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

// ------------------------------------------------------------------------------------------------
// SVG

let vizInstance: Promise<Viz> | null = null;

/**
 * Renders `dot` to SVG with @viz-js/viz. One WASM instance is created on first use and reused.
 * Returns the SVG text; throws with Graphviz's messages if the DOT does not render.
 */
export async function renderSvg(dot: string): Promise<string> {
  vizInstance ??= instance();
  const viz = await vizInstance;
  const result = viz.render(dot, { format: 'svg' });
  if (result.status !== 'success') {
    throw new Error(`Graphviz failed: ${result.errors.map((e) => e.message).join('; ')}`);
  }
  return result.output;
}

/**
 * Returns every diagram file `npx embryonic diagrams` writes, paths relative to the repository
 * root: diagrams/<machine>.{mmd,dot,svg} for each machine and diagrams/overview.{mmd,dot,svg}.
 * Deterministic; renders five SVGs (about 0.2 s).
 */
export async function diagramFiles(): Promise<GeneratedFile[]> {
  const files: GeneratedFile[] = [];
  const sets: [string, string, string][] = [
    ...MACHINE_NAMES.map((n): [string, string, string] => [n, toMermaid(MACHINES[n]), toDot(MACHINES[n])]),
    ['overview', overviewMermaid(), overviewDot()],
  ];
  for (const [name, mmd, dot] of sets) {
    files.push({ path: `diagrams/${name}.mmd`, content: mmd });
    files.push({ path: `diagrams/${name}.dot`, content: dot });
    files.push({ path: `diagrams/${name}.svg`, content: await renderSvg(dot) });
  }
  return files;
}

/**
 * Returns the README section between the `diagrams` markers: the Mermaid diagrams of the overview
 * and of each machine, with how to read them. Pure.
 */
export function readmeSection(): string {
  const block = (title: string, file: string, mmd: string, intro: string): string[] => [
    `### ${title}`,
    '',
    intro,
    '',
    '```mermaid',
    mmd.trimEnd(),
    '```',
    '',
    `Also as [SVG](diagrams/${file}.svg) and [DOT](diagrams/${file}.dot).`,
    '',
  ];
  return [
    'Generated from the machines by `npx embryonic diagrams`; `npx embryonic diagrams --check` (part of',
    '`embryonic verify`) fails when they drift. A transition reads `EVENT [guard] / effects`: `always` is',
    'an eventless transition, `after timeout client` is the handshake deadline (the session task woken by',
    'its timer), `[else]` is taken when the guards before it fail, and `+N more` counts the effects left',
    'out (PORTING.md lists them all). Grey states are passed through within one step.',
    '',
    ...block(
      'The composed system',
      'overview',
      overviewMermaid(),
      'The messages the machines send each other (effect → event, routed by `machines/compose.ts`), and the events that come from the host.',
    ),
    ...MACHINE_NAMES.flatMap((n) =>
      block(
        n,
        n,
        toMermaid(MACHINES[n]),
        `\`machines/${n}.machine.ts\`: ${MACHINES[n].root.description ?? ''}`,
      ),
    ),
  ].join('\n');
}

/** The markers of the generated README section. */
export const README_BEGIN = '<!-- BEGIN GENERATED: diagrams -->';
export const README_END = '<!-- END GENERATED: diagrams -->';

/**
 * Returns `readme` with the text between the diagrams markers replaced by `section`. Pure.
 * Throws if the markers are missing or out of order.
 */
export function spliceReadme(readme: string, section: string): string {
  const begin = readme.indexOf(README_BEGIN);
  const end = readme.indexOf(README_END);
  if (begin === -1 || end === -1 || end < begin)
    throw new Error(`README.md has no "${README_BEGIN}" … "${README_END}" section`);
  return `${readme.slice(0, begin + README_BEGIN.length)}\n${section.trimEnd()}\n${readme.slice(end)}`;
}
