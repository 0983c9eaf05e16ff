// Short messages for what just happened, announced to screen readers:
// outcomes politely, failures at once.

import { createContext, type ComponentChildren } from "preact";
import { useCallback, useContext, useState } from "preact/hooks";
import { describe } from "../api/client";

interface Notice {
  id: number;
  text: string;
  error: boolean;
}

interface Notify {
  say: (text: string) => void;
  fail: (text: string) => void;
  notices: Notice[];
  dismiss: (id: number) => void;
}

const Ctx = createContext<Notify>({ say() {}, fail() {}, notices: [], dismiss() {} });
let next = 1;

export function NoticeProvider(props: { children: ComponentChildren }) {
  const [notices, setNotices] = useState<Notice[]>([]);
  const dismiss = useCallback((id: number) => setNotices((n) => n.filter((x) => x.id !== id)), []);
  const push = useCallback((text: string, error: boolean) => {
    const id = next++;
    setNotices((n) => [...n.slice(-3), { id, text, error }]);
    if (!error) setTimeout(() => dismiss(id), 6000);
  }, []);
  const say = useCallback((t: string) => push(t, false), []);
  const fail = useCallback((t: string) => push(t, true), []);
  return <Ctx.Provider value={{ say, fail, notices, dismiss }}>{props.children}</Ctx.Provider>;
}

export function useNotify() {
  return useContext(Ctx);
}

/**
 * Runs an action a person asked for: says what `work` returns when it
 * went through, or what went wrong. Resolves to whether it went through.
 */
export function useAttempt() {
  const { say, fail } = useNotify();
  return async (work: () => Promise<string | void>): Promise<boolean> => {
    try {
      const done = await work();
      if (done) say(done);
      return true;
    } catch (e) {
      fail(describe(e));
      return false;
    }
  };
}

export function Notices() {
  const { notices, dismiss } = useNotify();
  const polite = notices.filter((n) => !n.error);
  const urgent = notices.filter((n) => n.error);
  return (
    <div class="notices">
      <div role="status" aria-live="polite">
        {polite.map((n) => (
          <p key={n.id} class="notice">
            {n.text}
          </p>
        ))}
      </div>
      <div role="alert" aria-live="assertive">
        {urgent.map((n) => (
          <p key={n.id} class="notice error">
            {n.text}{" "}
            <button type="button" class="link" onClick={() => dismiss(n.id)}>
              Dismiss
            </button>
          </p>
        ))}
      </div>
    </div>
  );
}
