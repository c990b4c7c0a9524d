import { useEffect, useState } from "react";
import { getConnectionState, onConnectionState } from "@/lib/client";

export function useConnectionState() {
  const [state, setState] = useState(getConnectionState);
  useEffect(() => onConnectionState(setState), []);
  return state;
}
