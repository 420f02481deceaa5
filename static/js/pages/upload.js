// The /upload page: the form (absent when the server has no admin token: the page says uploads are off).

import { bindUploadForm } from "../upload.js";

const form = document.getElementById("upload-form");
if (form) bindUploadForm(form);
