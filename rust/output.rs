//! The plan as Python objects, with the GIL held. Each value is the driver's
//! own str when it is an exact str (a new reference to it), or a new str of
//! its text (a subclass's, or a current value read from the caller's map).
//! Every container is filled as it is made (appends, never empty slots), and
//! each is a strong reference while it is filled: Python code that runs at an
//! allocation may see it (`gc.get_objects()`), never free it.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::held::{self, Held, Txt};
use crate::planner::{self, Column, Text};

pub struct Output<'a, 'py> {
    py: Python<'py>,
    held: &'a Held<'py>,
    columns: &'a [Bound<'py, PyString>],
    names: Names<'py>,
}

/// The plan's own keys.
struct Names<'py> {
    service: Bound<'py, PyString>,
    volumes: Bound<'py, PyString>,
    groups: Bound<'py, PyString>,
    count: Bound<'py, PyString>,
    unchanged: Bound<'py, PyString>,
    sets: Bound<'py, PyString>,
    rows: Bound<'py, PyString>,
    values: Bound<'py, PyString>,
    ids: Bound<'py, PyString>,
    columns: Bound<'py, PyString>,
}

impl<'a, 'py> Output<'a, 'py> {
    pub fn new(py: Python<'py>, held: &'a Held<'py>, columns: &'a [Bound<'py, PyString>]) -> PyResult<Self> {
        let name = |text| held::interned(py, text);
        let names = Names {
            service: name("service")?,
            volumes: name("volumes")?,
            groups: name("groups")?,
            count: name("count")?,
            unchanged: name("unchanged")?,
            sets: name("sets")?,
            rows: name("rows")?,
            values: name("values")?,
            ids: name("ids")?,
            columns: name("columns")?,
        };
        Ok(Output { py, held, columns, names })
    }

    fn value(&self, value: Option<Txt>) -> PyResult<Bound<'py, PyAny>> {
        let Some(text) = value else { return Ok(self.py.None().into_bound(self.py)) };
        if let Some(object) = text.object() {
            let object = self.held.get(object);
            if held::is_exact_str(object) {
                return Ok(object.clone());
            }
        }
        Ok(held::new_str(self.py, text.as_str())?.into_any())
    }

    fn column(&self, column: Column) -> &Bound<'py, PyString> {
        &self.columns[column as usize]
    }

    fn values(&self, values: &[(Column, Option<Txt>)]) -> PyResult<Bound<'py, PyDict>> {
        let dict = held::new_dict(self.py)?;
        for (column, value) in values {
            dict.set_item(self.column(*column), self.value(*value)?)?;
        }
        Ok(dict)
    }

    fn list(&self, items: impl Iterator<Item = PyResult<Bound<'py, PyAny>>>) -> PyResult<Bound<'py, PyList>> {
        let list = held::new_list(self.py)?;
        for item in items {
            list.append(item?)?;
        }
        Ok(list)
    }

    fn kind(&self, plan: &planner::KindPlan<Txt>) -> PyResult<Bound<'py, PyDict>> {
        let py = self.py;
        let sets = held::new_list(py)?;
        for chunk in &plan.sets {
            let set = held::new_dict(py)?;
            set.set_item(&self.names.values, self.values(&chunk.values)?)?;
            set.set_item(&self.names.ids, self.list(plan.ids(chunk.members.clone()).map(|t| self.value(Some(t))))?)?;
            sets.append(set)?;
        }
        let rows = held::new_list(py)?;
        for chunk in &plan.rows {
            let row = held::new_dict(py)?;
            let columns = self.list(chunk.columns.iter().map(|c| Ok(self.column(*c).clone().into_any())))?;
            row.set_item(&self.names.columns, columns)?;
            // The ids and each column's values, appended in one pass over the rows.
            let ids = held::new_list(py)?;
            let columns = (0..chunk.columns.len()).map(|_| held::new_list(py)).collect::<PyResult<Vec<_>>>()?;
            for (id, values) in plan.rows(chunk) {
                ids.append(self.value(Some(id))?)?;
                for (column, value) in columns.iter().zip(values) {
                    column.append(self.value(value)?)?;
                }
            }
            row.set_item(&self.names.ids, ids)?;
            let values = held::new_list(py)?;
            for column in columns {
                values.append(column)?;
            }
            row.set_item(&self.names.values, values)?;
            rows.append(row)?;
        }
        let out = held::new_dict(py)?;
        out.set_item(&self.names.count, plan.count)?;
        out.set_item(&self.names.unchanged, plan.unchanged)?;
        out.set_item(&self.names.sets, sets)?;
        out.set_item(&self.names.rows, rows)?;
        Ok(out)
    }

    pub fn plan(&self, plan: &planner::Plan<Txt>) -> PyResult<Bound<'py, PyDict>> {
        let py = self.py;
        let out = held::new_dict(py)?;
        out.set_item(&self.names.service, self.values(&plan.service)?)?;
        out.set_item(&self.names.volumes, self.kind(&plan.volumes)?)?;
        out.set_item(&self.names.groups, self.kind(&plan.groups)?)?;
        Ok(out)
    }
}
