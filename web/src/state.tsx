// What the signed-in pages share: the account (for the usage meter), a
// counter that says "the listing changed, load it again", and the uploader.

import { createContext, type ComponentChildren } from "preact";
import { useCallback, useContext, useEffect, useMemo, useState } from "preact/hooks";
import { api, ok, type Me } from "./api/client";
import { Uploader } from "./upload/uploader";

export interface AppState {
  me: Me | null;
  refreshMe: () => void;
  /** Grows whenever something changed the listing (an upload landed, …). */
  revision: number;
  bump: () => void;
  uploader: Uploader;
}

const Ctx = createContext<AppState | null>(null);

export function AppStateProvider(props: { children: ComponentChildren }) {
  const [me, setMe] = useState<Me | null>(null);
  const [revision, setRevision] = useState(0);
  const refreshMe = useCallback(() => {
    ok(api.GET("/api/v1/me")).then(setMe, () => {});
  }, []);
  const bump = useCallback(() => {
    setRevision((n) => n + 1);
    refreshMe();
  }, []);
  const uploader = useMemo(() => new Uploader(), []);
  useEffect(() => {
    refreshMe();
    // Back to this tab after a while: what others changed meanwhile shows.
    let hidden = 0;
    const seen = () => {
      if (document.hidden) hidden = Date.now();
      else if (hidden && Date.now() - hidden > 30_000) bump();
    };
    document.addEventListener("visibilitychange", seen);
    const unlanded = uploader.onLanded(bump);
    return () => {
      document.removeEventListener("visibilitychange", seen);
      unlanded();
    };
  }, []);
  useEffect(() => () => uploader.close(), []);
  return (
    <Ctx.Provider value={{ me, refreshMe, revision, bump, uploader }}>{props.children}</Ctx.Provider>
  );
}

export function useApp(): AppState {
  const s = useContext(Ctx);
  if (!s) throw new Error("useApp outside AppStateProvider");
  return s;
}
