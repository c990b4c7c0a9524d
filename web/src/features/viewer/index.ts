export { Viewer } from "./Viewer";
