import { useState } from "react";
import { Button } from "@/components/Button";
import { ConnectPanel } from "./ConnectPanel";

/** "Connect": opens the panel with this server's ports and snippets. */
export function ConnectButton() {
  const [open, setOpen] = useState(false);
  return (
    <>
      <Button onClick={() => setOpen(true)} aria-haspopup="dialog">
        Connect
      </Button>
      <ConnectPanel open={open} onClose={() => setOpen(false)} />
    </>
  );
}
